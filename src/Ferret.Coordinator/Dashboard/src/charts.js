// Per-round charts with uPlot: small, canvas-based, no network at run time.
import uPlot from 'uplot';

const palette = ['#0b5cad', '#a40e26', '#116329', '#7d4e00'];

function bytesTick(v) {
  if (v == null) return '';
  if (v >= 1024 * 1024) return `${(v / 1024 / 1024).toFixed(1)} MiB`;
  if (v >= 1024) return `${(v / 1024).toFixed(0)} KiB`;
  return `${v} B`;
}

const specs = {
  'chart-loss': { series: [{ label: 'train loss', key: (r) => r.trainLoss }], values: (u, vals) => vals.map((v) => v?.toFixed(2)) },
  'chart-contributors': { series: [{ label: 'contributors', key: (r) => r.aggregated }, { label: 'missing', key: (r) => r.missing }], values: (u, vals) => vals.map((v) => v?.toFixed(0)) },
  'chart-bytes': { series: [{ label: 'up', key: (r) => r.bytesUp }, { label: 'down', key: (r) => r.bytesDown }], values: (u, vals) => vals.map(bytesTick), log: true },
  'chart-latency': { series: [{ label: 'latency, s', key: (r) => r.seconds }], values: (u, vals) => vals.map((v) => v?.toFixed(1)) },
};

export class RoundCharts {
  constructor() {
    this.plots = new Map();
    this.rows = [];
    const resize = new ResizeObserver(() => this.resize());
    for (const id of Object.keys(specs)) resize.observe(document.getElementById(id));
  }

  /** @param rows closed rounds in order: { round, trainLoss, aggregated, missing, bytesUp, bytesDown, seconds } */
  update(rows) {
    this.rows = rows;
    for (const [id, spec] of Object.entries(specs)) {
      const host = document.getElementById(id);
      const data = [rows.map((r) => r.round), ...spec.series.map((s) => rows.map((r) => s.key(r) ?? null))];
      let plot = this.plots.get(id);
      if (rows.length === 0) {
        plot?.destroy();
        this.plots.delete(id);
        host.replaceChildren(Object.assign(document.createElement('p'), { className: 'empty', textContent: 'No round has closed yet.' }));
        continue;
      }
      if (!plot) {
        host.replaceChildren();
        plot = new uPlot(options(spec, host), data, host);
        this.plots.set(id, plot);
      } else {
        plot.setData(data);
      }
    }
  }

  resize() {
    for (const [id, plot] of this.plots) {
      const width = document.getElementById(id).clientWidth;
      if (width > 0 && Math.abs(width - plot.width) > 2) plot.setSize({ width, height: 200 });
    }
  }
}

function options(spec, host) {
  return {
    width: Math.max(200, host.clientWidth),
    height: 200,
    scales: { x: { time: false }, y: spec.log ? { distr: 3 } : {} },
    axes: [
      { label: 'round', values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? v : '')) },
      { values: spec.values, size: 64 },
    ],
    series: [{ label: 'round' }, ...spec.series.map((s, i) => ({ label: s.label, stroke: palette[i], width: 2, points: { show: true, size: 6 } }))],
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
  };
}
