// Ratchet's reporter for Node's built-in test runner (node --test): one JSON line per test,
// with its file and the names of the suites it is in, written to $RATCHET_RESULTS/node.jsonl.
// Node's own JUnit reporter names neither the file nor the suites, so two files' tests with
// one name could not be told apart.
import { appendFileSync } from "node:fs";
import { relative } from "node:path";

const out = `${process.env.RATCHET_RESULTS}/node.jsonl`;

export default async function* reporter(source) {
  const suites = new Map(); // file -> the names of the tests open at each nesting level
  for await (const event of source) {
    const data = event.data;
    const open = suites.get(data?.file) ?? [];
    suites.set(data?.file, open);
    if (event.type === "test:start") {
      open.length = data.nesting;
      open.push(data.name);
      continue;
    }
    if (event.type !== "test:pass" && event.type !== "test:fail") continue;
    if (data.details?.type === "suite") continue; // its tests are reported one by one
    const outcome = data.skip !== undefined || data.todo !== undefined
      ? "skipped"
      : event.type === "test:pass" ? "passed" : "failed";
    const file = data.file ? relative(process.cwd(), data.file) : "";
    appendFileSync(out, JSON.stringify({
      file, name: [...open.slice(0, data.nesting), data.name].join(" > "), outcome,
      duration_ms: data.details?.duration_ms ?? 0,
    }) + "\n");
  }
}
