// The staff monitoring page's pure helpers (static/js/monitor.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { SERIES, chartPoints, formatNumber, pick } from "../../static/js/monitor.js";

test("numbers are shown with at most the given decimals, unknown as a dash", () => {
  assert.equal(formatNumber(1234.567), "1,234.6");
  assert.equal(formatNumber(2, 0), "2");
  assert.equal(formatNumber(null), "-");
  assert.equal(formatNumber(undefined), "-");
});

test("pick reads a dotted path and tolerates missing parts", () => {
  const now = { ack: { p50_ms: 3.2 }, documents: 0 };
  assert.equal(pick(now, "ack.p50_ms"), 3.2);
  assert.equal(pick(now, "documents"), 0);
  assert.equal(pick(now, "fan_out.mean"), undefined);
});

test("chart points span the window, scaled to the largest value", () => {
  const samples = [
    { time: 0, edits_per_second: 5 }, // Older than the window: left out.
    { time: 400, edits_per_second: null }, // No value yet: left out.
    { time: 500, edits_per_second: 10 },
    { time: 1000, edits_per_second: 5 },
  ];
  const options = { width: 100, height: 50, windowSeconds: 600, now: 1000 };
  const { points, max } = chartPoints(samples, SERIES.edits_per_second, options);
  assert.equal(max, 10);
  assert.equal(points.length, 2);
  const [[x1, y1], [x2, y2]] = points;
  assert.ok(Math.abs(x1 - 100 / 6) < 1e-9 && y1 === 0);
  assert.equal(x2, 100);
  assert.equal(y2, 25);
});

test("an all-zero series sits on the baseline", () => {
  const samples = [{ time: 10, connections: { websocket: 0, http: 0 } }];
  const { points, max } = chartPoints(samples, SERIES.connections, {
    width: 10, height: 20, windowSeconds: 60, now: 10,
  });
  assert.equal(max, 1);
  assert.deepEqual(points, [[10, 20]]);
});

test("connections add up the transports", () => {
  assert.equal(SERIES.connections({ connections: { websocket: 3, http: 2 } }), 5);
});
