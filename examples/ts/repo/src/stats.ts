/** The arithmetic mean of `values`. */
export function mean(values: number[]): number {
  if (values.length === 0) {
    throw new RangeError("mean of an empty list");
  }
  return values.reduce((sum, x) => sum + x, 0) / values.length;
}
