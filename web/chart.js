// The daily chart of the analytics page: sent, delivered and failed per day for one channel over
// 30 or 90 days, drawn as SVG bars (no library: three series of rectangles), with the same
// figures as a table for screen readers and anyone who prefers numbers.

import { ApiError, settingsApi } from './api.js';
import { $, FormErrors, el, formatNumber } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const SERIES = ['sent', 'delivered', 'failed'];
const WIDTH = 720;
const HEIGHT = 220;
const AXIS = 28;

let initialised = false;

/** Reads the chosen channel and period and draws them; the filter redraws on change. */
export async function renderDaily() {
  if (!initialised) {
    initialised = true;
    for (const id of ['daily-channel', 'daily-days']) {
      $(id).addEventListener('change', async () => {
        const errors = new FormErrors('daily-error', {});
        errors.clear();
        try {
          await draw();
        } catch (error) {
          if (error instanceof ApiError && error.status === 401) return;
          errors.show(error);
        }
      });
    }
  }
  await draw();
}

async function draw() {
  const channel = $('daily-channel').value;
  const days = Number($('daily-days').value);
  const rows = await settingsApi.daily(days);
  const series = perDay(rows, channel, days);
  $('daily-svg').replaceChildren(bars(series));
  $('daily-rows').replaceChildren(...series.map((day) => {
    const tr = el('tr');
    tr.append(el('th', { text: day.day, attrs: { scope: 'row' } }));
    for (const name of SERIES) tr.append(el('td', { className: 'number', text: formatNumber(day[name]) }));
    return tr;
  }));
}

/** One entry per calendar day (UTC, as the API counts), oldest first, zero where nothing went. */
function perDay(rows, channel, days) {
  const totals = new Map();
  for (const row of rows) {
    if (row.messageType !== channel) continue;
    const day = totals.get(row.day) ?? { sent: 0, delivered: 0, failed: 0 };
    for (const name of SERIES) day[name] += row[name];
    totals.set(row.day, day);
  }
  const today = new Date();
  const series = [];
  for (let back = days - 1; back >= 0; back -= 1) {
    const date = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate() - back));
    const day = date.toISOString().slice(0, 10);
    series.push({ day, ...(totals.get(day) ?? { sent: 0, delivered: 0, failed: 0 }) });
  }
  return series;
}

function svg(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

function bars(series) {
  const chart = svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart-svg', role: 'img' });
  const top = Math.max(1, ...series.map((day) => day.sent), ...series.map((day) => day.failed));
  const plotHeight = HEIGHT - AXIS;
  const slot = (WIDTH - AXIS) / series.length;
  const bar = Math.max(1, (slot * 0.8) / SERIES.length);
  chart.append(svg('line', { x1: AXIS, y1: plotHeight, x2: WIDTH, y2: plotHeight, class: 'chart-axis' }));
  const label = svg('text', { x: AXIS - 4, y: 12, class: 'chart-label', 'text-anchor': 'end' });
  label.textContent = formatNumber(top);
  chart.append(label);
  series.forEach((day, index) => {
    SERIES.forEach((name, offset) => {
      const height = (day[name] / top) * (plotHeight - 8);
      if (height <= 0) return;
      const rect = svg('rect', {
        x: AXIS + index * slot + slot * 0.1 + offset * bar,
        y: plotHeight - height,
        width: bar,
        height,
        class: `chart-bar chart-${name}`,
      });
      const title = svg('title', {});
      title.textContent = `${day.day}: ${formatNumber(day[name])} ${name}`;
      rect.append(title);
      chart.append(rect);
    });
  });
  for (const [index, text] of [[0, series[0]?.day], [series.length - 1, series[series.length - 1]?.day]]) {
    const tick = svg('text', {
      x: AXIS + index * slot + slot / 2,
      y: HEIGHT - 8,
      class: 'chart-label',
      'text-anchor': index === 0 ? 'start' : 'end',
    });
    tick.textContent = text ?? '';
    chart.append(tick);
  }
  return chart;
}
