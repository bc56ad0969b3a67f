-- wrk script: POST the JSON body from $BENCH_BODY_FILE and print one machine-readable summary line.
--   BENCH_BODY_FILE=body.json wrk -t1 -c16 -d5s -s bench/wrk_post.lua http://127.0.0.1:9001/v1/chat/completions

local path = assert(os.getenv("BENCH_BODY_FILE"), "set BENCH_BODY_FILE to the request body")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer sk-bench"

-- $BENCH_VARY_HEADER: send that header with another value on every request (a cache key: every
-- request a cache miss). $BENCH_VARY_RUN makes the values unique to this run: Lua's unseeded random
-- numbers repeat from run to run, so a warm-up's keys came back as hits in the measured run.
local vary = os.getenv("BENCH_VARY_HEADER")
if vary then
   local run = assert(os.getenv("BENCH_VARY_RUN"), "set BENCH_VARY_RUN with BENCH_VARY_HEADER")
   local count = 0
   function request()
      count = count + 1
      wrk.headers[vary] = "bench-" .. run .. "-" .. tostring(count)
      return wrk.format()
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
