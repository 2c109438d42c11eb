-- wrk script of benchmark C: every request does real work, none is a replay.
--
--   wrk -s wrk_load.lua URL -- MODE CALLERS SLOTS PREFIX THREADS
--
-- MODE     book | fetch | insert | healthz
-- CALLERS  file of "session_id user_id" lines (sessions started and identified beforehand)
-- SLOTS    file of free slot ids, one per line, never handed out twice (book only; "-" otherwise)
-- PREFIX   start of every Idempotency-Key, distinct per wrk run
-- THREADS  wrk's -t
--
-- Thread i of N takes lines i, i+N, i+2N… of both files, so two threads never book the same
-- slot nor name the same session; within a thread the sessions go round-robin, so consecutive
-- requests name different sessions. Each request has its own Idempotency-Key. Without
-- pipelining wrk calls request() once per request.
-- done() prints one "WRK_RESULT" line of JSON (latencies in microseconds) and, when a request
-- failed, one "WRK_ERROR" line with the first failure's status and body.

local threads = {}
local thread_count = 0

function setup(thread)
   thread:set("thread_index", thread_count)
   thread_count = thread_count + 1
   table.insert(threads, thread)
end

local function lines(path)
   local found = {}
   if path == "-" then
      return found
   end
   for line in io.lines(path) do
      if line ~= "" then
         table.insert(found, line)
      end
   end
   return found
end

local mode, prefix
local callers = {}
local slots = {}
local sent = 0
local next_slot = 1
first_error = nil
slots_reused = 0

function init(args)
   mode, prefix = args[1], args[4]
   local step = tonumber(args[5])
   local all_callers = lines(args[2])
   for i = thread_index + 1, #all_callers, step do
      local session_id, user_id = all_callers[i]:match("^(%S+) (%S+)$")
      table.insert(callers, { session_id = session_id, user_id = user_id })
   end
   local all_slots = lines(args[3])
   for i = thread_index + 1, #all_slots, step do
      table.insert(slots, all_slots[i])
   end
   if mode == "healthz" then
      wrk.method, wrk.path = "GET", "/healthz"
   end
   prefix = prefix .. "-" .. thread_index .. "-"
end

local function post(path, body, key)
   local headers = { ["Content-Type"] = "application/json", ["Idempotency-Key"] = key }
   return wrk.format("POST", path, headers, body)
end

function request()
   sent = sent + 1
   if mode == "healthz" then
      return wrk.format()
   end
   local caller = callers[(sent - 1) % #callers + 1]
   local key = prefix .. sent
   if mode == "book" then
      if next_slot > #slots then
         next_slot = 1
         slots_reused = slots_reused + 1
      end
      local slot = slots[next_slot]
      next_slot = next_slot + 1
      return post(
         "/tools/book_appointment",
         '{"session_id":"' .. caller.session_id .. '","slot_id":"' .. slot .. '"}',
         key
      )
   elseif mode == "fetch" then
      return post("/tools/fetch_slots", '{"session_id":"' .. caller.session_id .. '"}', key)
   end
   return post(
      "/insert",
      '{"user_id":"' .. caller.user_id .. '","session_id":"' .. caller.session_id .. '"}',
      nil
   )
end

function response(status, headers, body)
   if status ~= 200 and not first_error then
      first_error = status .. " " .. string.gsub(string.sub(body or "", 1, 300), "%s+", " ")
   end
end

function done(summary, latency, requests)
   local errors = summary.errors
   local reused = 0
   local first = nil
   for _, thread in ipairs(threads) do
      reused = reused + (thread:get("slots_reused") or 0)
      first = first or thread:get("first_error")
   end
   io.write(
      string.format(
         'WRK_RESULT {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
            .. '"status":%d,"timeout":%d,"p50":%d,"p90":%d,"p99":%d,"max":%d,"slots_reused":%d}\n',
         summary.requests,
         summary.duration,
         errors.connect,
         errors.read,
         errors.write,
         errors.status,
         errors.timeout,
         latency:percentile(50),
         latency:percentile(90),
         latency:percentile(99),
         latency.max,
         reused
      )
   )
   if first then
      io.write("WRK_ERROR " .. first .. "\n")
   end
end
