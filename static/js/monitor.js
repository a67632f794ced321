/**
 * The staff monitoring page (templates/monitoring/monitor.html): polls the JSON of
 * /staff/monitor/data.json every few seconds, writes the figures into the elements marked
 * data-figure, and draws the last minutes of samples on the canvases marked data-chart.
 *
 * The helpers above `start` are pure, for node --test; `start` runs only in a browser page
 * that has the #monitor element.
 */

const POLL_MS = 3000;

/** A figure as shown: "-" when unknown, at most `digits` decimals, thousands separated. */
export function formatNumber(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  return Number(value).toLocaleString("en-US", { maximumFractionDigits: digits });
}

/** The value at a dotted path ("ack.p50_ms") of an object, or undefined. */
export function pick(object, path) {
  return path.split(".").reduce((value, key) => (value == null ? undefined : value[key]), object);
}

/** The value a chart plots for one sample. */
export const SERIES = {
  edits_per_second: (sample) => sample.edits_per_second,
  connections: (sample) => Object.values(sample.connections).reduce((a, b) => a + b, 0),
  ack_p99_ms: (sample) => sample.ack_p99_ms,
};

/**
 * Pixel points of one series over the last `windowSeconds` up to `now` (unix seconds): x
 * from 0 (oldest) to width, y from height (zero) to 0 (the largest value, at least 1).
 * Samples without a value (null) are skipped; so are those older than the window.
 */
export function chartPoints(samples, value, { width, height, windowSeconds, now }) {
  const kept = samples
    .filter((sample) => sample.time >= now - windowSeconds)
    .map((sample) => [sample.time, value(sample)])
    .filter(([, y]) => y !== null && y !== undefined);
  const max = Math.max(1, ...kept.map(([, y]) => y));
  const points = kept.map(([time, y]) => [
    ((time - (now - windowSeconds)) / windowSeconds) * width,
    height - (y / max) * height,
  ]);
  return { points, max };
}

function drawChart(canvas, samples, value, windowSeconds, now) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const context = canvas.getContext("2d");
  context.scale(ratio, ratio);
  context.clearRect(0, 0, width, height);
  const pad = 4;
  const { points, max } = chartPoints(samples, value, {
    width,
    height: height - 2 * pad,
    windowSeconds,
    now,
  });
  context.strokeStyle = "#e4e7ec";
  context.beginPath();
  context.moveTo(0, height - pad);
  context.lineTo(width, height - pad);
  context.stroke();
  context.strokeStyle = "#3559e0";
  context.lineWidth = 1.5;
  context.beginPath();
  points.forEach(([x, y], index) => {
    if (index === 0) context.moveTo(x, y + pad);
    else context.lineTo(x, y + pad);
  });
  context.stroke();
  const label = canvas.parentElement.querySelector("[data-chart-max]");
  if (label) label.textContent = `max ${formatNumber(max)}`;
}

function render(root, data) {
  const now = data.now;
  for (const element of root.querySelectorAll("[data-figure]")) {
    element.textContent = formatNumber(pick(now, element.dataset.figure));
  }
  const last = data.samples[data.samples.length - 1];
  const rate = root.querySelector("[data-edits-per-second]");
  if (rate) rate.textContent = formatNumber(last ? last.edits_per_second : null);
  for (const [name, target] of [
    ["rejected", "#rejected"],
    ["reconnects", "#reconnects"],
  ]) {
    const body = root.querySelector(target);
    const rows = Object.entries(now[name]).sort(([a], [b]) => a.localeCompare(b));
    body.replaceChildren(
      ...rows.map(([key, count]) => {
        const row = document.createElement("tr");
        const label = document.createElement("th");
        label.scope = "row";
        label.textContent = key;
        const cell = document.createElement("td");
        cell.textContent = formatNumber(count, 0);
        row.append(label, cell);
        return row;
      }),
    );
    if (!rows.length) {
      const row = document.createElement("tr");
      row.innerHTML = '<td class="empty" colspan="2">none</td>';
      body.append(row);
    }
  }
  const at = Date.now() / 1000;
  for (const canvas of root.querySelectorAll("canvas[data-chart]")) {
    drawChart(canvas, data.samples, SERIES[canvas.dataset.chart], data.window_seconds, at);
  }
  root.querySelector("#updated").textContent =
    `updated ${new Date().toLocaleTimeString()} · process ${now.pid}`;
}

export function start(root) {
  const url = root.dataset.url;
  const status = root.querySelector("#updated");
  async function poll() {
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok || !response.headers.get("content-type")?.includes("json")) {
        throw new Error(`HTTP ${response.status}`);
      }
      render(root, await response.json());
    } catch (error) {
      status.textContent = `could not update (${error.message}); log in again as staff?`;
    }
    setTimeout(poll, POLL_MS);
  }
  poll();
}

if (typeof document !== "undefined") {
  const root = document.getElementById("monitor");
  if (root) start(root);
}
