/** Polls `check` until it returns true, failing after `seconds`: for an effect that lands shortly after the call
 * that causes it (a socket closing after the pool that used it has ended). It asserts the outcome, never a time. */
export async function eventually(what: string, check: () => boolean | Promise<boolean>, seconds = 10): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`still not so after ${seconds} s: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
