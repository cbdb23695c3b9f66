-- The sweeper on pg_cron, inside the database: where the extension can be had (Supabase, and any server that
-- preloads it), spendgate.sweep_due() runs every minute as a job of the role that migrates, with no HTTP hop and no
-- outside cron. Anywhere else (PGlite, a server without pg_cron, or a database other than the one pg_cron serves,
-- cron.database_name) this migration changes nothing and says why in a notice: call /v1/sweep or run
-- `npm run sweep` from a cron instead. Correctness never waits for a sweep (a call that touches a stale hold
-- expires it first); sweeping returns stale holds to scopes nobody touches.
do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    if not exists (select 1 from pg_available_extensions where name = 'pg_cron') then
      raise notice 'spendgate: pg_cron is not installed on this server; schedule /v1/sweep or npm run sweep instead';
      return;
    end if;
    begin
      -- Fails unless pg_cron is in shared_preload_libraries, this is its database, and this role may create it.
      -- pg_catalog is where Supabase has it created.
      create extension pg_cron with schema pg_catalog;
    exception when others then
      raise notice 'spendgate: pg_cron cannot be enabled here (%); schedule /v1/sweep or npm run sweep instead', sqlerrm;
      return;
    end;
  end if;
  -- Named, so that scheduling again replaces the job instead of adding one. Each run is a pass of batches of 100
  -- holds, one transaction each (rows FOR UPDATE SKIP LOCKED), beside any other sweeper.
  perform cron.schedule('spendgate-sweep', '* * * * *', 'call spendgate.sweep_due()');
end $$;
