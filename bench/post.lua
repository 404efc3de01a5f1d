-- wrk script: POST a JSON body and print parseable results.
-- Body and Authorization come from the environment (BENCH_BODY, BENCH_AUTH) so one script
-- serves every scenario. done() prints one line that bench/run.py parses:
--   BENCH_RESULT requests=... duration_us=... p50_us=... p90_us=... p99_us=... ...

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"model":"bench-llm","messages":[{"role":"user","content":"hi"}]}'
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f max_us=%d " ..
    "status_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeout_errors=%d\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end
