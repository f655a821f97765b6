# Helpers shared by the coupond bench scripts (on top of lib.sh).

# api METHOD PATH [curl args...]: an authenticated call; prints the body, fails on HTTP errors.
api() {
    local method=$1 path=$2
    shift 2
    curl -fsS -X "$method" -H "Authorization: Bearer $BENCH_KEY" "$@" "$BENCH_URL$path"
}

# json_field FIELD: reads one top-level field of the JSON on stdin.
json_field() {
    python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"
}

# wait_job ID: polls /v1/jobs/ID until it is no longer running; prints the final record.
wait_job() {
    local job
    for _ in $(seq 1 7200); do
        job=$(api GET "/v1/jobs/$1")
        if [ "$(json_field state <<<"$job")" != "running" ]; then
            echo "$job"
            return 0
        fi
        sleep 0.5
    done
    bench_die "job $1 still running after an hour"
}

# add_customers N: customers c1..cN straight into the bench database (set-up, not measured).
add_customers() {
    psql "$COUPOND_DATABASE_URL" -qc "INSERT INTO customers (org_id, external_id, transaction_count, created_at, updated_at)
        SELECT $BENCH_ORG_ID, 'c' || g, 0, now(), now() FROM generate_series(1, $1) g" >/dev/null
    # A live system's customers arrive over days and autovacuum keeps their statistics; a
    # million inserted in one statement would be planned as an empty table for the first
    # minute of the bench.
    psql "$COUPOND_DATABASE_URL" -qc "ANALYZE customers" >/dev/null
}

# stock_pool NAME COUNT [DISCOUNT]: a bulk pool with COUNT generated codes; prints its id.
# DISCOUNT is the pool's discount fields as JSON members (default free shipping).
stock_pool() {
    local pool job discount=${3:-'"discount_type": "free_shipping"'}
    pool=$(api POST /v1/pools -H 'content-type: application/json' \
        -d "{\"name\": \"$1\", \"source\": \"bulk\", \"pattern\": \"$1-\$\$\$\$\$\$\$\$\$\$\", $discount}" |
        json_field id)
    local left=$2 batch
    while [ "$left" -gt 0 ]; do
        batch=$((left > 5000000 ? 5000000 : left))
        job=$(api POST "/v1/pools/$pool/generate" -H 'content-type: application/json' -d "{\"count\": $batch}" | json_field id)
        wait_job "$job" >/dev/null
        left=$((left - batch))
    done
    echo "$pool"
}

# checkout_pool: a €5 coupon for bills of €10 or more in the north zone, holder only, once (the
# defaults); prints its id.
checkout_pool() {
    api POST /v1/pools -H 'content-type: application/json' \
        -d '{"name": "checkout", "source": "uploaded", "discount_type": "amount", "value": 500,
             "currency": "EUR", "redemption": {"min_bill": 1000, "stores": [{"kind": "zone", "id": "north"}]}}' |
        json_field id
}

# issue_coupons POOL: coupon RDM-cK issued to customer cK, for every customer of the org, and a
# history as a store in service has: coupon OLD-cK redeemed by cK last month (set-up in SQL, not
# measured). Without the history the redemptions table is empty when the statements are first
# planned, and every count of a coupon's redemptions stays a sequential scan of a table that
# grows by a thousand rows a second through the run (autovacuum re-analyzes it only after
# the bench).
issue_coupons() {
    psql "$COUPOND_DATABASE_URL" -qc "INSERT INTO coupons (org_id, pool_id, code, status, customer_id, value,
            redemption_count, issued_at, last_status_change_at)
        SELECT org_id, $1, 'RDM-' || external_id, 1, id, 500, 0, now(), now()
        FROM customers WHERE org_id = $BENCH_ORG_ID" >/dev/null
    psql "$COUPOND_DATABASE_URL" -qc "WITH old AS (INSERT INTO coupons (org_id, pool_id, code, status,
            customer_id, value, redemption_count, issued_at, last_status_change_at)
          SELECT org_id, $1, 'OLD-' || external_id, 2, id, 500, 1, now() - interval '40 days',
            now() - interval '30 days'
          FROM customers WHERE org_id = $BENCH_ORG_ID RETURNING id, org_id, pool_id, customer_id)
        INSERT INTO redemptions (org_id, coupon_id, pool_id, customer_id, store_id, zone, basket_total,
            currency, discount, active, redeemed_at, recorded_at)
        SELECT org_id, id, pool_id, customer_id, 's1', 'north', 2500, 'EUR', 500, true,
            now() - interval '30 days', now() - interval '30 days' FROM old" >/dev/null
    psql "$COUPOND_DATABASE_URL" -qc "ANALYZE" >/dev/null
}
