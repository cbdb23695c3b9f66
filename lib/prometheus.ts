/**
 * Counters and histograms in Prometheus's text exposition format (version 0.0.4), kept in memory per process, as
 * Prometheus expects of every instance it scrapes. Small enough to run anywhere the app runs (no Node APIs).
 */

export type Labels = Record<string, string>;

export interface Counter {
  inc(labels?: Labels, by?: number): void;
}

export interface Histogram {
  observe(value: number, labels?: Labels): void;
}

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  render(): string[];
}

export interface Registry {
  counter(name: string, help: string): Counter;
  histogram(name: string, help: string, buckets: readonly number[]): Histogram;
  /** Every metric, as the body of a scrape. */
  render(): string;
}

export const prometheusContentType = 'text/plain; version=0.0.4; charset=utf-8';

export function createRegistry(): Registry {
  const families: Family[] = [];
  return {
    counter(name, help) {
      const values = new Map<string, number>();
      families.push({
        name, help, type: 'counter',
        render: () => values.size === 0 ? [`${name} 0`] : [...values].map(([labels, value]) => `${name}${labels} ${number(value)}`),
      });
      return {
        inc(labels = {}, by = 1) {
          const key = labelText(labels);
          values.set(key, (values.get(key) ?? 0) + by);
        },
      };
    },
    histogram(name, help, buckets) {
      const series = new Map<string, { counts: number[]; sum: number; count: number }>();
      families.push({
        name, help, type: 'histogram',
        render: () => [...(series.size === 0 ? new Map([['', { counts: buckets.map(() => 0), sum: 0, count: 0 }]]) : series)]
          .flatMap(([labels, { counts, sum, count }]) => [
            ...buckets.map((le, i) => `${name}_bucket${withLabel(labels, 'le', number(le))} ${counts[i]}`),
            `${name}_bucket${withLabel(labels, 'le', '+Inf')} ${count}`,
            `${name}_sum${labels} ${number(sum)}`,
            `${name}_count${labels} ${count}`,
          ]),
      });
      return {
        observe(value, labels = {}) {
          const key = labelText(labels);
          let entry = series.get(key);
          if (!entry) series.set(key, (entry = { counts: buckets.map(() => 0), sum: 0, count: 0 }));
          // Buckets are cumulative: a value counts in every bucket whose bound it does not exceed.
          buckets.forEach((le, i) => {
            if (value <= le) entry.counts[i]! += 1;
          });
          entry.sum += value;
          entry.count += 1;
        },
      };
    },
    render: () =>
      families.map((f) => [`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type}`, ...f.render()].join('\n')).join('\n') + '\n',
  };
}

function labelText(labels: Labels): string {
  const entries = Object.entries(labels).filter(([, value]) => value !== '').sort(([a], [b]) => (a < b ? -1 : 1));
  return entries.length === 0 ? '' : `{${entries.map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}`;
}

function withLabel(labels: string, name: string, value: string): string {
  const extra = `${name}="${value}"`;
  return labels === '' ? `{${extra}}` : `${labels.slice(0, -1)},${extra}}`;
}

function escape(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function number(value: number): string {
  return Number.isFinite(value) ? String(value) : value > 0 ? '+Inf' : value < 0 ? '-Inf' : 'NaN';
}
