"""A tiny smoke check, kept out of the library: ``python3 -m dagger_sandbox_client [backend]``."""

import json
import sys

from .client import BridgeClient

if __name__ == "__main__":  # run from examples/python: python3 -m dagger_sandbox_client [backend]
    with BridgeClient() as _c:
        print(json.dumps(_c.initialize_result, indent=2))
        with _c.create(backend=sys.argv[1] if len(sys.argv) > 1 else "auto") as _sb:
            print(_sb, _sb.exec("echo hello from $(uname -a)").stdout, end="")
