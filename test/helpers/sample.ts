/** Runs `n` requests one after another and counts answers by a key. */
export async function tally<T>(n: number, one: () => Promise<T>, key: (a: T) => string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const k = key(await one());
    counts[k] = (counts[k] ?? 0) + 1;
  }
  return counts;
}
