-- wrk script: POST /endpoint with a 1 KiB PatientAdmin NewPatient message.
-- The access token comes from the FERROX_TOKEN environment variable.
local token = os.getenv("FERROX_TOKEN")
local notes = string.rep("x", 760)
local body = '{"Meta":{"DataModel":"PatientAdmin","EventType":"NewPatient","Test":true},'
  .. '"Patient":{"Identifiers":[{"ID":"0000012345","IDType":"MR"}],'
  .. '"Demographics":{"FirstName":"Timothy","LastName":"Bixby","DOB":"2008-01-06","Sex":"Male"},'
  .. '"Notes":["' .. notes .. '"]}}'

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. token

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("body bytes: %d\n", #body))
  io.write(string.format("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
  io.write(string.format("requests: %d, non-2xx or errors: %d\n", summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
