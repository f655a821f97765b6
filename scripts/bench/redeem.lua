-- POST /v1/coupons/RDM-cK/redeem by customer cK: every request a different coupon, each
-- redeemed once by its holder. Threads interleave K (bench_wrk runs two: K = 1, 3, 5... and
-- 2, 4, 6...), starting after BENCH_REDEEM_OFFSET (0) so a second run takes fresh coupons.
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
wrk.headers["Content-Type"] = "application/json"
local threads = 2
local body = '{"customer":{"external_id":"c%d"},"basket":{"total":2500,"currency":"EUR"},'
    .. '"store":{"id":"s1","zone":"north"}}'
local offset = tonumber(os.getenv("BENCH_REDEEM_OFFSET") or "0")
local next_id = 0

function setup(thread)
    thread:set("id", next_id)
    next_id = next_id + 1
end

local sent = 0

function request()
    local k = offset + sent * threads + id + 1
    sent = sent + 1
    return wrk.format(nil, string.format("/v1/coupons/RDM-c%d/redeem", k), nil, string.format(body, k))
end
