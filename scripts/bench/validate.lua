-- POST /v1/coupons/RDM-cK/validate by customer cK, K random in 1..BENCH_CUSTOMERS.
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
wrk.headers["Content-Type"] = "application/json"
local customers = tonumber(os.getenv("BENCH_CUSTOMERS") or "200000")
local body = '{"customer":{"external_id":"c%d"},"basket":{"total":2500,"currency":"EUR"},'
    .. '"store":{"id":"s1","zone":"north"}}'

function setup(thread)
    thread:set("seed", math.random(1, 1000000))
end

function init()
    math.randomseed(os.time() + seed)
end

function request()
    local k = math.random(1, customers)
    return wrk.format(nil, string.format("/v1/coupons/RDM-c%d/validate", k), nil, string.format(body, k))
end

-- Paced by BENCH_RATE (paced.lua). wrk runs this file in several Lua states and from any
-- working directory, so paced.lua is found beside this file's own path.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "paced.lua")
