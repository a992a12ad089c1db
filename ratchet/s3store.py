"""Artifacts in S3-compatible object storage (`RATCHET_ARTIFACTS_URL=s3://bucket/prefix`).

The endpoint comes from the standard `AWS_ENDPOINT_URL` (an S3-compatible server: MinIO, Ceph,
R2, a test's moto server), the credentials and region from the standard AWS chain (environment,
shared files, instance roles): nothing of Ratchet's own. Objects are keyed
`<prefix>/<aa>/<sha256>`, like the local store's files; uploads and downloads stream
(multipart above the transfer threshold).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ratchet.artifacts import ArtifactNotFound, ContentStore, claim_name, digest_of
from ratchet.scrub import Scrubber

_MISSING = ("404", "NoSuchKey", "NotFound")
PART = 8 * 2**20


class S3ArtifactStore(ContentStore):
    def __init__(self, url: str, scrubber: Scrubber | None = None, client: Any = None) -> None:
        super().__init__(scrubber)
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://bucket/prefix URL: {url!r}")
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        if client is None:
            import boto3  # only a store that is used pays for importing the SDK

            client = boto3.client("s3")
        self.client = client
        from boto3.s3.transfer import TransferConfig

        # Multipart above 8 MiB, two parts in flight: what a transfer holds in memory is bounded
        # by these, whatever the object's size.
        self.transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART,
                                       max_concurrency=2, io_chunksize=256 * 1024)  # fmt: skip

    def _key(self, digest: str) -> str:
        return "/".join(filter(None, [self.prefix, digest[:2], digest]))

    def _has(self, digest: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(digest))
        except Exception as err:  # botocore's ClientError, without importing it here
            if _code(err) in _MISSING:
                return False
            raise
        return True

    def _write(self, digest: str, data: bytes) -> None:
        if len(data) < PART:  # one request, not the transfer manager's threads
            self.client.put_object(Bucket=self.bucket, Key=self._key(digest), Body=data)
            return
        self.client.upload_fileobj(io.BytesIO(data), self.bucket, self._key(digest),
                                   Config=self.transfer)  # fmt: skip

    def _write_file(self, digest: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(digest), Config=self.transfer)

    def get(self, ref: str) -> bytes:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(digest_of(ref)))
        except Exception as err:
            raise _not_found(err, ref) from None
        body: bytes = answer["Body"].read()
        return body

    def claim(self, name: str, data: bytes = b"") -> bool:
        # A conditional write (If-None-Match: *): S3 and the compatible servers refuse a second
        # one with 412, so exactly one replica's claim succeeds.
        try:
            self.client.put_object(Bucket=self.bucket, Key=_claims(self, name), Body=data,
                                   IfNoneMatch="*")  # fmt: skip
        except Exception as err:
            if _code(err) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def marker(self, name: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=_claims(self, name))
        except Exception as err:
            if _code(err) in _MISSING:
                return None
            raise
        body: bytes = answer["Body"].read()
        return body

    def _marker_keys(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=_claims(self, prefix)
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def markers(self, prefix: str) -> list[str]:
        return sorted(key.rsplit("/", 1)[-1] for key in self._marker_keys(prefix))

    def release(self, prefix: str) -> None:
        for key in self._marker_keys(prefix):
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def get_file(self, ref: str, path: Path) -> None:
        try:
            self.client.download_file(self.bucket, self._key(digest_of(ref)), str(path),
                                      Config=self.transfer)  # fmt: skip
        except Exception as err:
            raise _not_found(err, ref) from None


def _claims(store: S3ArtifactStore, name: str) -> str:
    return "/".join(filter(None, [store.prefix, "claims", claim_name(name)]))


def _code(err: Exception) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _not_found(err: Exception, ref: str) -> Exception:
    return ArtifactNotFound(f"no artifact {ref}") if _code(err) in _MISSING else err
