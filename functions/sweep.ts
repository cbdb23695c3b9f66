// `npm run sweep`: one sweeper pass over DATABASE_URL (or the embedded database), for any cron. Prints one line;
// exits 0 when the pass ran (even if more holds are due than one pass takes: the line says so), 1 when it could not.
import { databaseClock } from '../lib/clock.ts';
import { createLedger } from '../lib/ledger.ts';
import { sweepDue } from '../lib/sweep.ts';
import { openDatabase } from './node/database.ts';

let code = 0;
try {
  const { db, description } = await openDatabase(process.env);
  try {
    const { expired, complete } = await sweepDue(createLedger(db, databaseClock));
    const more = complete ? '' : '; more are due, run it again';
    console.log(`spendgate sweep: expired ${expired} hold${expired === 1 ? '' : 's'} past their expiry in ${description}${more}`);
  } finally {
    await db.close().catch(() => {});
  }
} catch (error) {
  const reason = error instanceof Error ? error.message.split('\n').join(' ') : String(error);
  console.error(`spendgate sweep: failed: ${reason}`);
  code = 1;
}
process.exit(code);
