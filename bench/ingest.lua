-- wrk script for bench/ingest.py: POST batches of prediction records with ids unique per run.
--
--   wrk -t1 -c8 -d10s --timeout 30s -s bench/ingest.lua URL -- BATCH TAG TIMESTAMP
--
-- Every record id is TAG-THREAD-COUNTER-INDEX: TAG is unique per run, THREAD per wrk thread,
-- COUNTER per request, so the server never sees a duplicate and every record is a real insert.
-- The body is pre-split at init into fixed pieces with an empty slot before each record's index;
-- a request only fills the slots with its prefix and joins them (table.concat), so the Lua cost
-- per request is one small loop and one concatenation. done() prints one machine-readable line.

local thread_ids = 0

function setup(thread)
  thread_ids = thread_ids + 1
  thread:set("thread_id", thread_ids)
end

local pieces, slots, counter, prefix_head
local headers = { ["Content-Type"] = "application/json" }

local function record_tail(index, timestamp)
  -- Everything of record `index` after the id prefix, with varied but valid values.
  local parts = { tostring(index), '","timestamp":"', timestamp, '","features":{' }
  for n = 0, 19 do
    parts[#parts + 1] = string.format('"n%d":%.6f,', n, math.random() * 100)
  end
  for c = 0, 4 do
    parts[#parts + 1] = string.format('"c%d":"v%d"', c, math.random(0, 9))
    parts[#parts + 1] = c < 4 and "," or ""
  end
  local a = math.floor(math.random() * 1000) / 1000
  local prediction = a >= 0.5 and "a" or "b"
  parts[#parts + 1] = string.format(
    '},"prediction":"%s","scores":{"a":%.3f,"b":%.3f}}', prediction, a, 1 - a
  )
  return table.concat(parts)
end

function init(args)
  local batch = tonumber(args[1]) or 1
  local tag = args[2] or "run"
  local timestamp = args[3] or "2026-01-01T00:00:00Z"
  math.randomseed(batch * 7919 + (thread_id or 1))
  prefix_head = tag .. "-" .. tostring(thread_id or 1) .. "-"
  counter = 0
  pieces, slots = {}, {}
  for index = 1, batch do
    pieces[#pieces + 1] = (index == 1 and '[' or ',') .. '{"id":"'
    pieces[#pieces + 1] = ""  -- the request's prefix goes here
    slots[#slots + 1] = #pieces
    pieces[#pieces + 1] = record_tail(index - 1, timestamp)
  end
  pieces[#pieces + 1] = "]"
end

function request()
  counter = counter + 1
  local prefix = prefix_head .. counter .. "-"
  for i = 1, #slots do
    pieces[slots[i]] = prefix
  end
  return wrk.format("POST", nil, headers, table.concat(pieces))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%d,"requests":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,'
      .. '"p99_us":%d,"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
    summary.duration, summary.requests, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout
  ))
end
