/**
 * Per-node progress kept by a workflow and answered by the `progress` query; also mirrored in the Web UI's
 * "current details".
 */
import { setHandler, setCurrentDetails } from '@temporalio/workflow';
import { progressQuery, type NodeState, type OperationProgress } from '../domain/progress';

export class Progress {
  private readonly state: OperationProgress;

  constructor(operation: string, nodes: string[]) {
    this.state = { operation, phase: 'starting', nodes: {} };
    for (const node of nodes) this.state.nodes[node] = { state: 'pending', step: '' };
    setHandler(progressQuery, () => this.state);
  }

  phase(phase: string): void {
    this.state.phase = phase;
    this.publish();
  }

  node(name: string, state: NodeState, step: string, error?: string): void {
    this.state.nodes[name] = error === undefined ? { state, step } : { state, step, error };
    this.publish();
  }

  private publish(): void {
    const lines = Object.entries(this.state.nodes).map(
      ([name, n]) => `| ${name} | ${n.state} | ${n.step} | ${n.error ?? ''} |`,
    );
    setCurrentDetails(
      [
        `**${this.state.operation}** — ${this.state.phase}`,
        '',
        '| node | state | step | error |',
        '|---|---|---|---|',
        ...lines,
      ].join('\n'),
    );
  }
}
