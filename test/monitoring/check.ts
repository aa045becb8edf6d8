import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { repoRoot } from '../testbed/cache.js';

const COMPONENT = join(repoRoot, 'k8s', 'components', 'monitoring');
export const RULES_TEST = join(repoRoot, 'test', 'monitoring', 'rules.test.yaml');

/** Labels Prometheus adds at scrape time (target labels), not the controller. */
export const TARGET_LABELS = new Set(['instance', 'job', 'namespace', 'pod', 'service', 'container', 'endpoint']);
/** Series Prometheus itself writes for every target: a rule may read them beside the controller's. */
export const PROMETHEUS_SERIES = new Set(['up']);
/** Labels PromQL functions make, not series. */
const SYNTHETIC_LABELS = new Set(['le', 'quantile']);

export interface Query {
  where: string;
  expr: string;
}

/** The PrometheusRule's `spec` (Prometheus' own rule-file format). */
export function ruleGroups(): { groups: { name: string; rules: { alert?: string; expr: string }[] }[] } {
  const rule = k8s.loadYaml<{ spec: { groups: { name: string; rules: { alert?: string; expr: string }[] }[] } }>(
    readFileSync(join(COMPONENT, 'prometheusrule.yaml'), 'utf8'),
  );
  return rule.spec;
}

/** Every PromQL expression the component ships: the alert rules' and the dashboard's. */
export function queries(): Query[] {
  const out: Query[] = [];
  for (const g of ruleGroups().groups) for (const r of g.rules) out.push({ where: `rule ${r.alert}`, expr: r.expr });
  const dash = JSON.parse(readFileSync(join(COMPONENT, 'dashboard.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  for (const p of dash.panels) for (const t of p.targets) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  return out;
}

/** Metric names in a PromQL expression (the controller's prefix only: every one must be ours). */
export function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b(mcp_job_controller_[a-z0-9_]+)\b/g)].map((m) => m[1]!))];
}

/** Label names an expression relies on: `by (…)`, `without (…)`, `on (…)` and selectors `{l="…"}`. */
export function labelNames(expr: string): string[] {
  const names = new Set<string>();
  for (const m of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) for (const l of m[1]!.split(',')) if (l.trim()) names.add(l.trim());
  for (const m of expr.matchAll(/\{([^}]*)\}/g)) for (const s of m[1]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) names.add(s[1]!);
  return [...names].filter((l) => !SYNTHETIC_LABELS.has(l) && !TARGET_LABELS.has(l));
}

/** The metric names of a Prometheus text exposition (`# TYPE` lines) and the label names each sample carries. */
export function parseExposition(text: string): { names: Set<string>; labels: Map<string, Set<string>> } {
  const names = new Set<string>();
  const labels = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) (\S+)/.exec(line);
    if (t) {
      names.add(t[1]!);
      continue;
    }
    const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!s) continue;
    const set = labels.get(s[1]!) ?? new Set<string>();
    for (const l of (s[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) set.add(l[1]!);
    labels.set(s[1]!, set);
  }
  return { names, labels };
}

/** A histogram's or summary's sample name to the metric it belongs to. */
export function familyOf(sample: string, names: Set<string>): string | undefined {
  if (names.has(sample)) return sample;
  const base = sample.replace(/_(bucket|sum|count)$/, '');
  return names.has(base) ? base : undefined;
}

/**
 * What in the shipped queries does not match an exposition: unknown metric names, and label
 * names that none of the expression's metrics carries. `declared` gives the label names the
 * code declares, for metrics with no sample in this exposition (a labelled counter that never
 * counted, such as retries in a run without a failure).
 */
export function problems(expo: ReturnType<typeof parseExposition>, declared: Map<string, Set<string>>): string[] {
  const out: string[] = [];
  for (const q of queries()) {
    const metrics = metricNames(q.expr);
    const onTarget = [...PROMETHEUS_SERIES].some((n) => new RegExp(`\\b${n}\\{`).test(q.expr));
    if (!metrics.length && !onTarget) out.push(`${q.where}: names none of the controller's metrics: ${q.expr}`);
    const carried = new Set<string>();
    for (const m of metrics) {
      const family = familyOf(m, expo.names);
      if (!family) {
        out.push(`${q.where}: ${m} is not in the controller's /metrics`);
        continue;
      }
      const seen = expo.labels.get(m);
      for (const l of seen && seen.size ? seen : (declared.get(family) ?? [])) carried.add(l);
    }
    for (const l of labelNames(q.expr)) if (!carried.has(l)) out.push(`${q.where}: label ${l} is on none of ${metrics.join(', ')}`);
  }
  return out;
}

/** The series the promtool unit tests feed in: name and label names (target labels aside). */
export function ruleTestSeries(): { name: string; labels: string[] }[] {
  const t = k8s.loadYaml<{ tests: { input_series: { series: string }[] }[] }>(readFileSync(RULES_TEST, 'utf8'));
  return t.tests.flatMap((x) =>
    x.input_series.flatMap((s) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$/.exec(s.series.trim())!;
      const labels = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=/g)].map((l) => l[1]!).filter((l) => !TARGET_LABELS.has(l));
      return PROMETHEUS_SERIES.has(m[1]!) ? [] : [{ name: m[1]!, labels }];
    }),
  );
}
