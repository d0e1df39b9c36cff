/**
 * Temporal Schedules that verify or resync a pack or cluster at an interval. The schedule id is the workflow id of
 * the operation (`resync/cluster/web`), so an operator finds both under one name. A schedule's workflow input is
 * resolved from the inventory when the schedule is written, and again whenever the inventory of its group changes.
 */
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type ScheduleClient,
  type ScheduleDescription,
  type ScheduleSummary,
} from '@temporalio/client';
import type { Logger } from 'pino';
import type { Settings } from '../config/settings';
import type { Target } from '../domain/model';
import type { InventoryStore } from '../inventory/store';
import { HttpError } from './errors';
import { planResyncGroup, planVerifyGroup, type OperationPlan } from './operation-plans';
import { searchAttributesOf } from './operations';
import { durationMs, scheduleIdSchema, type ScheduleCreate, type ScheduleView } from './schemas';

type Action = ScheduleCreate['action'];
type GroupTarget = ScheduleCreate['target'];

export function scheduleIdOf(action: Action, target: GroupTarget): string {
  return `${action}/${target.kind}/${target.name}`;
}

function parseScheduleId(id: string): { action: Action; target: GroupTarget } {
  if (!scheduleIdSchema.safeParse(id).success) {
    throw new HttpError(400, 'invalid request', {
      fields: [{ field: 'id', rule: 'must be resync|verify/pack|cluster/NAME' }],
    });
  }
  const [action, kind, name] = id.split('/') as [Action, GroupTarget['kind'], string];
  return { action, target: { kind, name } };
}

/** 90000 ms -> "90s", 3600000 -> "1h". */
export function formatEvery(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${Math.round(ms / 1000)}s`;
}

function everyOf(spec: ScheduleDescription['spec'] | ScheduleSummary['spec']): string | undefined {
  const every = spec?.intervals?.[0]?.every;
  return typeof every === 'number' ? formatEvery(every) : undefined;
}

function viewOf(id: string, s: ScheduleDescription | ScheduleSummary): ScheduleView {
  const { action, target } = parseScheduleId(id);
  const every = everyOf(s.spec);
  return {
    scheduleId: id,
    action,
    target,
    workflowType: s.action?.workflowType ?? '',
    ...(every ? { every } : {}),
    paused: s.state.paused,
    ...(s.state.note ? { note: s.state.note } : {}),
    nextActionTimes: s.info.nextActionTimes.map((t) => t.toISOString()),
    recentActions: s.info.recentActions.map((a) => ({
      workflowId: a.action.workflow.workflowId,
      runId: a.action.workflow.firstExecutionRunId,
      takenAt: a.takenAt.toISOString(),
    })),
  };
}

export class ScheduleService {
  constructor(
    private readonly schedule: ScheduleClient,
    private readonly store: InventoryStore,
    private readonly settings: Settings,
    private readonly log: Logger,
  ) {}

  private plan(action: Action, target: Target): Promise<OperationPlan> {
    return action === 'resync' ? planResyncGroup(this.store, target) : planVerifyGroup(this.store, target);
  }

  private actionOf(plan: OperationPlan) {
    return {
      type: 'startWorkflow' as const,
      workflowType: plan.workflowType,
      workflowId: plan.workflowId,
      taskQueue: this.settings.taskQueue,
      args: [plan.input],
      typedSearchAttributes: searchAttributesOf(plan),
      staticSummary: `Scheduled: ${plan.summary}`,
    };
  }

  /** Creates the schedule, or updates it when it exists. @returns whether it was created */
  async createOrUpdate(body: ScheduleCreate): Promise<{ created: boolean; view: ScheduleView }> {
    const plan = await this.plan(body.action, body.target);
    const scheduleId = scheduleIdOf(body.action, body.target);
    const every = durationMs(body.every);
    let created = true;
    try {
      await this.schedule.create({
        scheduleId,
        spec: { intervals: [{ every }] },
        action: this.actionOf(plan),
        policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '5m' },
        state: { paused: body.paused, ...(body.note ? { note: body.note } : {}) },
      });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      created = false;
      await this.schedule.getHandle(scheduleId).update((prev) => ({
        ...prev,
        spec: { intervals: [{ every }] },
        action: this.actionOf(plan),
        state: { ...prev.state, paused: body.paused, ...(body.note ? { note: body.note } : {}) },
      }));
    }
    this.log.info({ scheduleId, created }, 'schedule written');
    return { created, view: await this.get(scheduleId) };
  }

  async get(id: string): Promise<ScheduleView> {
    parseScheduleId(id);
    try {
      return viewOf(id, await this.schedule.getHandle(id).describe());
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) throw new HttpError(404, `no schedule ${id}`);
      throw err;
    }
  }

  async list(): Promise<ScheduleView[]> {
    const views: ScheduleView[] = [];
    for await (const s of this.schedule.list()) {
      if (scheduleIdSchema.safeParse(s.scheduleId).success) views.push(viewOf(s.scheduleId, s));
    }
    return views.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
  }

  /** Changes the interval, and pauses or unpauses, in one update so that the changes cannot interleave. */
  async patch(id: string, body: { every?: string; paused?: boolean; note?: string }): Promise<ScheduleView> {
    await this.get(id); // 404 before any change
    const handle = this.schedule.getHandle(id);
    if (body.every !== undefined) {
      const every = durationMs(body.every);
      await handle.update((prev) => ({
        ...prev,
        spec: { intervals: [{ every }] },
        state: {
          ...prev.state,
          ...(body.paused !== undefined ? { paused: body.paused } : {}),
          ...(body.note !== undefined ? { note: body.note } : {}),
        },
      }));
    } else if (body.paused === true) {
      await handle.pause(body.note ?? 'paused through the sitefleet API');
    } else if (body.paused === false) {
      await handle.unpause(body.note ?? 'unpaused through the sitefleet API');
    }
    return this.get(id);
  }

  async remove(id: string): Promise<void> {
    await this.get(id);
    await this.schedule.getHandle(id).delete();
  }

  /**
   * Re-resolves the input of the schedules of these groups after an inventory change, so a scheduled run acts on
   * the inventory as it is. A group that no longer exists loses its schedules. Failures are logged, not thrown:
   * the inventory change has happened.
   */
  async refreshFor(targets: Target[]): Promise<void> {
    const seen = new Set<string>();
    for (const target of targets) {
      if (target.kind === 'server') continue;
      for (const action of ['resync', 'verify'] as const) {
        const id = scheduleIdOf(action, target as GroupTarget);
        if (seen.has(id)) continue;
        seen.add(id);
        const handle = this.schedule.getHandle(id);
        try {
          const exists = await this.store.get(target.kind, target.name);
          if (!exists) {
            await handle.delete();
            continue;
          }
          const plan = await this.plan(action, target);
          await handle.update((prev) => ({ ...prev, action: this.actionOf(plan) }));
        } catch (err) {
          if (err instanceof ScheduleNotFoundError) continue;
          this.log.warn({ err, scheduleId: id }, 'could not refresh schedule input');
        }
      }
    }
  }
}
