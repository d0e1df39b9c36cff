/**
 * Per-node progress of a running operation, answered by every workflow's `progress` query.
 * The API and the CLI show it while an operation runs.
 */
import { defineQuery } from '@temporalio/workflow';

export type NodeState = 'pending' | 'running' | 'done' | 'failed' | 'compensating' | 'compensated' | 'skipped';

export interface NodeProgress {
  state: NodeState;
  /** The step the node is at, such as "rsync platform" or "reload nginx". */
  step: string;
  error?: string;
}

export interface OperationProgress {
  operation: string;
  phase: string;
  nodes: Record<string, NodeProgress>;
}

export const progressQuery = defineQuery<OperationProgress>('progress');
