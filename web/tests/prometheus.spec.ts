// The overview's Prometheus text parser, on its own (no browser needed).

import { test, expect } from '@playwright/test';
import { byLabel, parsePrometheus } from '../src/components/prometheus';

const SCRAPE = `# HELP marketplace_projection_lag_events Committed events a projection has not applied yet.
# TYPE marketplace_projection_lag_events gauge
marketplace_projection_lag_events{projection="deployments"} 3
marketplace_projection_lag_events{projection="nodes"} 0
marketplace_kafka_consumer_lag_messages{group="g1",topic="events",partition="0"} 5
marketplace_kafka_consumer_lag_messages{group="g1",topic="events",partition="1"} 7
marketplace_event_store_position 1234 1700000000000
weird_label{path="/a \\"quoted\\" \\\\ back\\nslash",other="x"} 1.5e3
http_request_duration_seconds_bucket{le="+Inf"} 42
gauge_without_value
not a metric line at all
nan_gauge NaN
broken{unterminated="x} 3
`;

test('reads names, labels (with escapes), values and skips what is not a sample', () => {
  const s = parsePrometheus(SCRAPE);
  expect(s.map((x) => x.name)).toEqual([
    'marketplace_projection_lag_events',
    'marketplace_projection_lag_events',
    'marketplace_kafka_consumer_lag_messages',
    'marketplace_kafka_consumer_lag_messages',
    'marketplace_event_store_position',
    'weird_label',
    'http_request_duration_seconds_bucket',
    'nan_gauge',
  ]);
  expect(s[0]).toEqual({ name: 'marketplace_projection_lag_events', labels: { projection: 'deployments' }, value: 3 });
  expect(s[4].value).toBe(1234); // the timestamp is not the value
  expect(s[5].labels).toEqual({ path: '/a "quoted" \\ back\nslash', other: 'x' });
  expect(s[5].value).toBe(1500);
  expect(s[6].labels.le).toBe('+Inf');
  expect(Number.isNaN(s[7].value)).toBe(true);
});

test('sums a metric per label value (consumer lag over partitions)', () => {
  const s = parsePrometheus(SCRAPE);
  expect(byLabel(s, 'marketplace_kafka_consumer_lag_messages', 'group')).toEqual({ g1: 12 });
  expect(byLabel(s, 'marketplace_projection_lag_events', 'projection')).toEqual({ deployments: 3, nodes: 0 });
  expect(byLabel(s, 'absent', 'x')).toEqual({});
});

test('an empty scrape or CRLF line ends do not break it', () => {
  expect(parsePrometheus('')).toEqual([]);
  expect(parsePrometheus('a 1\r\nb{x="y"} 2\r\n')).toEqual([
    { name: 'a', labels: {}, value: 1 },
    { name: 'b', labels: { x: 'y' }, value: 2 },
  ]);
});
