// `npm run sweep`: one sweeper pass over DATABASE_URL (or the embedded database), for any cron: what /v1/sweep
// does, expiring the stale holds and then delivering the webhook events due (when SPENDGATE_WEBHOOK_URL is set).
// Prints one line; exits 0 when the pass ran (even if more was due than one pass takes: the line says so), 1 when
// it could not.
import { databaseClock } from '../lib/clock.ts';
import { createLedger } from '../lib/ledger.ts';
import { sweepDue } from '../lib/sweep.ts';
import { readWebhookSettings } from '../lib/webhook-settings.ts';
import { deliverDueEvents } from '../lib/webhooks.ts';
import { openDatabase } from './node/database.ts';

let code = 0;
try {
  const webhook = readWebhookSettings(process.env);
  if (webhook.problems.length > 0) throw new Error(webhook.problems.join(' '));
  const { db, description } = await openDatabase(process.env);
  try {
    const { expired, complete } = await sweepDue(createLedger(db, databaseClock));
    const webhooks = await deliverDueEvents(db, (input, init) => fetch(input, init), { webhook: webhook.settings }, databaseClock);
    const more = complete ? '' : '; more are due, run it again';
    const delivered = webhooks
      ? `; webhooks: ${webhooks.delivered} delivered, ${webhooks.failed} failed${webhooks.complete ? '' : ', more due'}`
      : '';
    console.log(`spendgate sweep: expired ${expired} hold${expired === 1 ? '' : 's'} past their expiry in ${description}${more}${delivered}`);
  } finally {
    await db.close().catch(() => {});
  }
} catch (error) {
  const reason = error instanceof Error ? error.message.split('\n').join(' ') : String(error);
  console.error(`spendgate sweep: failed: ${reason}`);
  code = 1;
}
process.exit(code);
