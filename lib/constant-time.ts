/** Whether two byte strings (digests) are equal, looking at every byte whatever the first difference, so that the
 * time taken does not tell where they differ. */
export function equalInConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) difference |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return difference === 0;
}
