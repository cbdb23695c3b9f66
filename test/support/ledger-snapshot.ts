import type { Queryable } from '../../lib/db.ts';

/** A fingerprint of everything the ledger holds (reservations, their counters, the counters, remembered refusals,
 * events): equal fingerprints mean no state change. Limits and the price table are configuration, not the ledger. */
export async function ledgerFingerprint(db: Queryable): Promise<string> {
  const [row] = await db.query<{ fingerprint: string; rows: number }>(`
    select md5(coalesce(string_agg(x, E'\\n' order by x), '')) as fingerprint, count(*)::int as rows from (
      select 'c ' || row(c.*)::text as x from spendgate.counters c
      union all select 'r ' || row(r.*)::text from spendgate.reservations r
      union all select 'rc ' || row(rc.*)::text from spendgate.reservation_counters rc
      union all select 'f ' || row(f.*)::text from spendgate.refusals f
      union all select 'e ' || row(e.*)::text from spendgate.events e) ledger`);
  return `${row!.rows} rows, md5 ${row!.fingerprint}`;
}
