/**
 * Where a workflow's time went, read from its history after the timed run: time inside activities (ssh, rsync,
 * mysql, HTTP probes) versus time between them (Temporal round-trips, workflow tasks, queueing in the worker).
 * This is what tells a reader what limits a number.
 */
import type { WorkflowHandle } from '@temporalio/client';

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;
type HistoryEvent = NonNullable<History['events']>[number];
type Timestamp = NonNullable<HistoryEvent['eventTime']>;

export interface ActivityTypeTime {
  type: string;
  count: number;
  /** The slowest execution (start to close), in seconds. */
  maxSeconds: number;
  /** The mean execution, in seconds. */
  meanSeconds: number;
}

export interface WorkflowBreakdown {
  /** From the WorkflowExecutionStarted event to the closing event, in seconds. */
  historySeconds: number;
  activities: number;
  /** Time during which at least one activity was running, in seconds. */
  activityBusySeconds: number;
  /** The longest wait of an activity between being scheduled and being started by the worker, in seconds. */
  maxActivityQueueSeconds: number;
  workflowTasks: number;
  /** Sum of workflow task durations (scheduled to completed), in seconds. */
  workflowTaskSeconds: number;
  /** Activity types, slowest first. */
  byType: ActivityTypeTime[];
}

function toMs(ts: Timestamp | null | undefined): number | undefined {
  if (!ts) return undefined;
  const seconds = typeof ts.seconds === 'number' ? ts.seconds : (ts.seconds?.toNumber() ?? 0);
  return seconds * 1000 + (ts.nanos ?? 0) / 1e6;
}

function eventId(id: HistoryEvent['eventId'] | null | undefined): number {
  if (id === null || id === undefined) return -1;
  return typeof id === 'number' ? id : id.toNumber();
}

/** Total length of the union of intervals. */
function unionLength(intervals: [number, number][]): number {
  const sorted = [...intervals].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let end = -Infinity;
  let start = -Infinity;
  for (const [s, e] of sorted) {
    if (s > end) {
      if (end > start) total += end - start;
      start = s;
      end = e;
    } else end = Math.max(end, e);
  }
  if (end > start) total += end - start;
  return total;
}

export function breakdownOf(history: History): WorkflowBreakdown {
  const events = history.events ?? [];
  const scheduled = new Map<number, { type: string; at: number }>();
  const started = new Map<number, number>();
  const intervals: [number, number][] = [];
  const perType = new Map<string, number[]>();
  const wfTaskScheduled = new Map<number, number>();
  let workflowTasks = 0;
  let workflowTaskMs = 0;
  let maxQueueMs = 0;
  let first: number | undefined;
  let last: number | undefined;
  for (const event of events) {
    const at = toMs(event.eventTime);
    if (at === undefined) continue;
    first ??= at;
    last = at;
    const id = eventId(event.eventId);
    if (event.activityTaskScheduledEventAttributes) {
      scheduled.set(id, { type: event.activityTaskScheduledEventAttributes.activityType?.name ?? '?', at });
    } else if (event.activityTaskStartedEventAttributes) {
      const sid = eventId(event.activityTaskStartedEventAttributes.scheduledEventId);
      started.set(sid, at);
      const s = scheduled.get(sid);
      if (s) maxQueueMs = Math.max(maxQueueMs, at - s.at);
    } else {
      const closed =
        event.activityTaskCompletedEventAttributes ??
        event.activityTaskFailedEventAttributes ??
        event.activityTaskTimedOutEventAttributes ??
        event.activityTaskCanceledEventAttributes;
      if (closed) {
        const sid = eventId(closed.scheduledEventId);
        const start = started.get(sid) ?? scheduled.get(sid)?.at;
        if (start !== undefined) {
          intervals.push([start, at]);
          const type = scheduled.get(sid)?.type ?? '?';
          perType.set(type, [...(perType.get(type) ?? []), at - start]);
        }
      }
    }
    if (event.workflowTaskScheduledEventAttributes) wfTaskScheduled.set(id, at);
    if (event.workflowTaskCompletedEventAttributes) {
      const s = wfTaskScheduled.get(eventId(event.workflowTaskCompletedEventAttributes.scheduledEventId));
      workflowTasks++;
      if (s !== undefined) workflowTaskMs += at - s;
    }
  }
  const byType = [...perType]
    .map(([type, ms]) => ({
      type,
      count: ms.length,
      maxSeconds: Math.max(...ms) / 1000,
      meanSeconds: ms.reduce((a, b) => a + b, 0) / ms.length / 1000,
    }))
    .sort((a, b) => b.maxSeconds - a.maxSeconds);
  return {
    historySeconds: first !== undefined && last !== undefined ? (last - first) / 1000 : 0,
    activities: intervals.length,
    activityBusySeconds: unionLength(intervals) / 1000,
    maxActivityQueueSeconds: maxQueueMs / 1000,
    workflowTasks,
    workflowTaskSeconds: workflowTaskMs / 1000,
    byType,
  };
}

/** One line for the log and the report: "activities 1.10 s of 1.36 s; syncPlatform x8 max 1.05 s, ...". */
export function describeBreakdown(b: WorkflowBreakdown): string {
  const types = b.byType
    .slice(0, 3)
    .map((t) => `${t.type} x${t.count} max ${t.maxSeconds.toFixed(2)} s`)
    .join(', ');
  return (
    `in activities ${b.activityBusySeconds.toFixed(2)} s of ${b.historySeconds.toFixed(2)} s ` +
    `(${b.activities} activities, ${b.workflowTasks} workflow tasks ${b.workflowTaskSeconds.toFixed(2)} s, ` +
    `max queue ${b.maxActivityQueueSeconds.toFixed(2)} s); ${types}`
  );
}
