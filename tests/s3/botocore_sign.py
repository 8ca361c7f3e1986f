#!/usr/bin/python3
"""Signs requests with botocore's S3SigV4Auth, the reference for ringfetch's SigV4Signer.

Usage: botocore_sign.py IN.jsonl OUT.jsonl

Each input line is one request written by tests/s3/sigv4_botocore_test.cpp:
  {"id", "method", "scheme", "host", "path" (raw key path, not encoded), "query" ([[name, value], ...] decoded),
   "headers" ([[name, value], ...]), "body" (UTF-8 text), "sign_payload" (bool), "access_key", "secret_key",
   "token" ("" for none), "region", "epoch_seconds"}
Each output line carries the same id and what botocore produced: the Authorization header, its canonical request and
string to sign, and the x-amz-* headers it added.

The URL is built the way botocore's S3 client builds it (serialize.py encodes the key with
percent_encode(key, safe='/~'); prepare_request_dict appends percent_encode_sequence(query)), so the path and query
botocore signs are those a real S3 client sends. Host comes from the URL, as botocore does when no Host header is set.
Run it with Debian's /usr/bin/python3, which has python3-botocore.
"""
import datetime
import json
import sys
import types

import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode, percent_encode_sequence


class _FixedClock(datetime.datetime):
    """datetime whose utcnow() is the timestamp of the request being signed."""

    fixed = None

    @classmethod
    def utcnow(cls):
        return cls.fixed


# botocore.auth reads the clock only through `datetime.datetime.utcnow()`; give that module its own fixed clock
# without touching the real datetime module.
botocore.auth.datetime = types.SimpleNamespace(datetime=_FixedClock)


class RecordingS3SigV4Auth(S3SigV4Auth):
    """S3SigV4Auth that keeps the canonical request and string to sign of its last signature."""

    def canonical_request(self, request):
        self.last_canonical_request = super().canonical_request(request)
        return self.last_canonical_request

    def string_to_sign(self, request, canonical_request):
        self.last_string_to_sign = super().string_to_sign(request, canonical_request)
        return self.last_string_to_sign


def build_url(case):
    url = f"{case['scheme']}://{case['host']}{percent_encode(case['path'], safe='/~')}"
    if case['query']:
        url += '?' + percent_encode_sequence([(name, value) for name, value in case['query']])
    return url


def sign(case):
    request = AWSRequest(method=case['method'], url=build_url(case), data=case['body'].encode('utf-8'))
    for name, value in case['headers']:
        request.headers[name] = value  # HTTPMessage appends, so repeated names stay repeated
    # An explicit S3 setting decides payload hashing, whatever the scheme or checksum headers say.
    request.context['client_config'] = types.SimpleNamespace(s3={'payload_signing_enabled': case['sign_payload']})

    _FixedClock.fixed = datetime.datetime.fromtimestamp(case['epoch_seconds'], datetime.timezone.utc).replace(
        tzinfo=None)
    credentials = Credentials(case['access_key'], case['secret_key'], case['token'] or None)
    auth = RecordingS3SigV4Auth(credentials, 's3', case['region'])
    auth.add_auth(request)
    return {
        'id': case['id'],
        'authorization': request.headers['Authorization'],
        'canonical_request': auth.last_canonical_request,
        'string_to_sign': auth.last_string_to_sign,
        'x-amz-date': request.headers.get('X-Amz-Date', ''),
        'x-amz-content-sha256': request.headers.get('X-Amz-Content-SHA256', ''),
        'x-amz-security-token': request.headers.get('X-Amz-Security-Token', ''),
    }


def main(argv):
    if len(argv) != 3:
        sys.exit(f'usage: {argv[0]} IN.jsonl OUT.jsonl')
    with open(argv[1], encoding='utf-8') as cases, open(argv[2], 'w', encoding='utf-8') as results:
        for line in cases:
            if line.strip():
                results.write(json.dumps(sign(json.loads(line))) + '\n')


if __name__ == '__main__':
    main(sys.argv)
