"""Create a blob container on an Azure Storage endpoint (Azurite in the
tests), signed with Shared Key as the Azure REST API documents it:
python3 az_create_container.py ENDPOINT ACCOUNT BASE64KEY CONTAINER.
ENDPOINT is path-style (http://127.0.0.1:10000/ACCOUNT). Standard library
only; exits 0 when the container exists afterwards."""
import base64
import hashlib
import hmac
import sys
import urllib.error
import urllib.request
from email.utils import formatdate

endpoint, account, key, container = sys.argv[1:5]
version = "2021-08-06"
date = formatdate(usegmt=True)
path = f"/{account}/{container}"
string_to_sign = "\n".join(
    # verb, content encoding, language, length (empty for 0), MD5, type,
    # date, if-modified-since, if-match, if-none-match,
    # if-unmodified-since, range
    ["PUT", "", "", "", "", "application/octet-stream", "", "", "", "", "", ""]
    + [f"x-ms-date:{date}", f"x-ms-version:{version}"]
    + [f"/{account}{path}", "restype:container"]
)
signature = base64.b64encode(
    hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256).digest()
).decode()
request = urllib.request.Request(
    f"{endpoint.rstrip('/')}/{container}?restype=container",
    method="PUT",
    data=b"",
    headers={
        "x-ms-date": date,
        "x-ms-version": version,
        "Authorization": f"SharedKey {account}:{signature}",
        "Content-Length": "0",
        "Content-Type": "application/octet-stream",
    },
)
try:
    urllib.request.urlopen(request, timeout=30)
except urllib.error.HTTPError as e:
    if e.code != 409:  # 409: it exists already
        sys.exit(f"create container {container}: {e.code} {e.read().decode(errors='replace')}")
