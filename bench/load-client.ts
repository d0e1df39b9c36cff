/**
 * A bounded load generator (Node's http client, keep-alive): `concurrency` loops, each sending the next request as
 * soon as the previous answer is read, until stopped. Counts every answer that is not 2xx and every error (reset,
 * timeout, refused), and keeps every latency for the percentiles. Loopback and test hosts only.
 */
import http from 'node:http';

export interface LoadOptions {
  host: string;
  port: number;
  path: string;
  headers?: Record<string, string>;
  /** Requests in flight at once. @default 8 */
  concurrency?: number;
  /** A request with no answer within this time counts as failed. @default 10 s */
  timeoutMs?: number;
}

export interface LoadResult {
  requests: number;
  /** Answers with a status outside 200-299. */
  non2xx: number;
  /** Requests that got no answer (connection reset or refused, timeout). */
  errors: number;
  /** non2xx + errors. */
  failed: number;
  /** Up to 10 examples of what failed. */
  examples: string[];
  p50Ms: number;
  p99Ms: number;
  durationMs: number;
}

export interface RunningLoad {
  stop(): Promise<LoadResult>;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

export function startLoad(options: LoadOptions): RunningLoad {
  const concurrency = options.concurrency ?? 8;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  const examples: string[] = [];
  let non2xx = 0;
  let errors = 0;
  let running = true;
  const started = performance.now();
  const once = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = http.request(
        {
          host: options.host,
          port: options.port,
          path: options.path,
          headers: options.headers,
          agent,
          timeout: options.timeoutMs ?? 10_000,
        },
        (res) => {
          res.on('data', () => undefined);
          res.on('end', () => {
            latencies.push(performance.now() - t0);
            const status = res.statusCode ?? 0;
            if (status < 200 || status > 299) {
              non2xx++;
              if (examples.length < 10)
                examples.push(`HTTP ${status} from ${String(res.headers['x-sitefleet-backend'])}`);
            }
            resolve();
          });
          res.on('error', (err) => {
            errors++;
            if (examples.length < 10) examples.push(`response: ${err.message}`);
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err) => {
        errors++;
        if (examples.length < 10) examples.push(`request: ${err.message}`);
        resolve();
      });
      req.end();
    });
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) await once();
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      const sorted = [...latencies].sort((a, b) => a - b);
      return {
        requests: latencies.length + errors,
        non2xx,
        errors,
        failed: non2xx + errors,
        examples,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        durationMs: performance.now() - started,
      };
    },
  };
}

/**
 * Puts load on while `during` runs and returns what it measured; if `during` throws, the load is stopped first and
 * the error passes on.
 */
export async function loadDuring(options: LoadOptions, during: () => Promise<unknown>): Promise<LoadResult> {
  const load = startLoad(options);
  try {
    await during();
  } catch (error) {
    await load.stop();
    throw error;
  }
  return load.stop();
}
