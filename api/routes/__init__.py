"""The API's routes, one router per resource; ``api.app`` includes each of ``ROUTERS``.

The answers several routes share are spelled once here, for their ``responses=``.
"""

from __future__ import annotations

from typing import Any

from api import schemas

# A loan read whose stored events fail their checks (code damaged_stream).
DAMAGED_LOAN: dict[int | str, dict[str, Any]] = {
    409: {"model": schemas.Error, "description": "a loan's stored events are damaged: `ledger verify`"}
}
# A loan id that names no loan, or none the token's party may read (code loan_not_found).
NO_SUCH_LOAN: dict[int | str, dict[str, Any]] = {
    404: {"model": schemas.Error, "description": "no such loan (or not the token's party's)"}
}
