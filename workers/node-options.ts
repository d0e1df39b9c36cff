/**
 * How production runs the worker's node process. Kept apart from workers/worker.ts so that the Dockerfile test and
 * the bench can read it without loading the worker.
 */

/**
 * Node options a production worker runs with (Dockerfile, docker-compose.yml, the bench). V8 sizes its heap from
 * the machine's memory (~4 GB on 24 GiB) and, with that much room, collects garbage lazily: measured over 50 site
 * installs, the worker's resident memory climbed to 367 MB although its live JavaScript heap stayed under 50 MB.
 * A 160 MB old generation keeps it collected (measured: ~270-290 MB resident peak) and leaves 3x headroom.
 */
export const WORKER_NODE_OPTIONS = ['--max-old-space-size=160'] as const;

/**
 * Environment a production worker runs with (the Dockerfile's ENV, the bench's worker). glibc gives every thread
 * that allocates its own malloc arena (up to 8 per core); the Temporal core's and libuv's threads then hold memory
 * the process no longer uses. Two arenas are enough for a worker that spends its time waiting on ssh and rsync.
 */
export const WORKER_ENV = { MALLOC_ARENA_MAX: '2' } as const;
