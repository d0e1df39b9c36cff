/**
 * A real Temporal dev server for tests (devserver/ephemeral.ts, shared with the benchmark).
 * One per test file: `const env = await startTestTemporal()` in `before`, `await env.teardown()` in `after`.
 */
export { startEphemeralTemporal as startTestTemporal } from '../../devserver/ephemeral';
