"""The checkout story through the generated Python client: pool, upload, issue, redeem.

Run by scripts/client-check as: client_check.py BASE_URL ADMIN_KEY
"""

import sys
from io import BytesIO

from coupond_client import AuthenticatedClient
from coupond_client.api.customers import upsert_customer
from coupond_client.api.issuance import issue_coupon
from coupond_client.api.pools import create_pool, upload_codes
from coupond_client.api.redemption import redeem_coupon
from coupond_client.models import (
    CreatePool,
    Customer,
    CustomerProfile,
    Import,
    IssueRequest,
    IssuedCoupon,
    Pool,
    RedeemRequest,
    Redemption,
)
from coupond_client.types import File


def expect(response, status, model):
    if response.status_code != status or not isinstance(response.parsed, model):
        sys.exit(f"expected {status} {model.__name__}, got {response.status_code}: {response.content!r}")
    return response.parsed


base, key = sys.argv[1:]
client = AuthenticatedClient(base_url=base, token=key)

pool = expect(
    create_pool.sync_detailed(
        client=client,
        body=CreatePool.from_dict(
            {"name": "Client", "source": "uploaded", "discount_type": "amount", "value": 500, "currency": "EUR"}
        ),
    ),
    201,
    Pool,
)
csv = File(payload=BytesIO(b"code\nCLIENT-0001\nCLIENT-0002\n"), mime_type="text/csv")
uploaded = expect(upload_codes.sync_detailed(pool.id, client=client, body=csv), 201, Import)
assert uploaded.accepted == 2, uploaded

expect(
    upsert_customer.sync_detailed("c-1", client=client, body=CustomerProfile.from_dict({"email": "c1@example.com"})),
    200,
    Customer,
)
issued = expect(
    issue_coupon.sync_detailed(
        pool.id, client=client, body=IssueRequest.from_dict({"customer": {"external_id": "c-1"}})
    ),
    201,
    IssuedCoupon,
)
redeemed = expect(
    redeem_coupon.sync_detailed(
        issued.code,
        client=client,
        body=RedeemRequest.from_dict(
            {"customer": {"external_id": "c-1"}, "basket": {"total": 2000, "currency": "EUR"}}
        ),
    ),
    201,
    Redemption,
)
print(f"client: pool {pool.id}, {uploaded.accepted} codes, issued {issued.code}, redemption {redeemed.id}")
