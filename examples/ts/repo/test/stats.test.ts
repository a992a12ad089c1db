import { test } from "node:test";
import assert from "node:assert/strict";

import { mean } from "../src/stats";

test("mean of a few values", () => {
  assert.equal(mean([1, 2, 3, 4]), 2.5);
});

test("mean of nothing is an error", () => {
  assert.throws(() => mean([]), RangeError);
});
