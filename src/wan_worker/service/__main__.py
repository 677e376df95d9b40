"""``python -m wan_worker.service``: print the job input's JSON schema (docs/input-schema.json)."""

import sys

from wan_worker.service.schema import request_json_schema_text

sys.stdout.write(request_json_schema_text())
