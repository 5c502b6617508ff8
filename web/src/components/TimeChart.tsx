// A time series drawn by uPlot, resized with its container.

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  /** One per time; null where there is no value. */
  values: (number | null)[];
}

export function TimeChart({ title, times, series, format }: {
  title: string;
  /** Seconds since the epoch. */
  times: number[];
  series: Series[];
  format?: (v: number) => string;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = () => Math.max(260, el.clientWidth);
    const colors = ['#1e6fd9', '#d9480f', '#2f9e44', '#7048e8', '#868e96'];
    const plot = new uPlot(
      {
        width: width(),
        height: 220,
        // A few samples only (a page just opened): a minute's window, not years.
        scales: { x: { time: true, range: (_: uPlot, min: number, max: number) => (max - min < 60 ? [max - 60, max + 5] : [min, max]) } },
        series: [
          {},
          ...series.map((s, i) => ({
            label: s.label,
            stroke: colors[i % colors.length],
            width: 2,
            value: (_: uPlot, v: number | null) => (v == null ? '—' : format ? format(v) : String(v)),
          })),
        ],
        axes: [{}, { values: (_: uPlot, ticks: number[]) => ticks.map((t) => (format ? format(t) : String(t))), size: 90 }],
      },
      [times, ...series.map((s) => s.values)] as uPlot.AlignedData,
      el,
    );
    const resize = new ResizeObserver(() => plot.setSize({ width: width(), height: 220 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.destroy();
    };
  }, [times, series, format]);
  return (
    <figure>
      <div ref={box} role="img" aria-label={title} />
      <figcaption>{title}</figcaption>
    </figure>
  );
}
