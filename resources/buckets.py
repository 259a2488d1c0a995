"""Object-storage layout for production: buckets `original`, `processed`, `thumbnails`.

`ensure_buckets()` creates missing buckets and applies lifecycle rules with
`put_bucket_lifecycle_configuration`:

| bucket      | default rule                                                             |
| ----------- | ------------------------------------------------------------------------ |
| original    | transition to `original_storage_class` after 90 days (AWS only), or expire after `original_expire_days` when set |
| processed   | expire after 30 days; also aborts incomplete multipart uploads after 1 day |
| thumbnails  | expire after 7 days                                                      |

What the servers honour: AWS S3 applies Expiration and Transition (storage classes
such as GLACIER_IR, STANDARD_IA). MinIO applies Expiration; Transition works only
towards a remote tier configured with `mc ilm tier add` (the storage class must be
the tier's name), otherwise MinIO rejects the rule. SeaweedFS and moto store the
configuration and return it (moto does not expire objects). Originals are the
system of record, so by default they are transitioned, never deleted.
"""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field


def lifecycle_rules(days: int, *, prefix: str = "", transition_class: str | None = None,
                    abort_multipart_days: int | None = None) -> list[dict]:
    rule: dict = {"ID": "idp-expire" if not transition_class else "idp-transition", "Status": "Enabled",
                  "Filter": {"Prefix": prefix}}
    if transition_class:
        rule["Transitions"] = [{"Days": days, "StorageClass": transition_class}]
    else:
        rule["Expiration"] = {"Days": days}
    if abort_multipart_days:
        rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": abort_multipart_days}
    return [rule]


class BucketLayout(ConfigurableResource):
    endpoint_url: str | None = None
    region_name: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    original_bucket: str = "original"
    processed_bucket: str = "processed"
    thumbnails_bucket: str = "thumbnails"
    processed_expire_days: int = 30
    thumbnails_expire_days: int = 7
    original_transition_days: int = 90
    original_storage_class: str | None = Field(
        default="GLACIER_IR", description="transition target for originals; None: no transition"
    )
    original_expire_days: int | None = Field(default=None, description="delete originals after N days (off by default)")

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region_name or "us-east-1",
            aws_access_key_id=self.aws_access_key_id, aws_secret_access_key=self.aws_secret_access_key,
            config=Config(s3={"addressing_style": "path"} if self.endpoint_url else {}),
        )

    def desired(self) -> dict[str, list[dict]]:
        if self.original_expire_days:
            original = lifecycle_rules(self.original_expire_days)
        elif self.original_storage_class:
            original = lifecycle_rules(self.original_transition_days, transition_class=self.original_storage_class)
        else:
            original = []
        return {
            self.original_bucket: original,
            self.processed_bucket: lifecycle_rules(self.processed_expire_days, abort_multipart_days=1),
            self.thumbnails_bucket: lifecycle_rules(self.thumbnails_expire_days),
        }

    def ensure_buckets(self) -> dict[str, str]:
        """Create missing buckets, apply lifecycle rules; returns bucket -> 'created'|'exists'.

        Any error (wrong credentials, unreachable endpoint) propagates: nothing is
        silently skipped.
        """
        from botocore.exceptions import ClientError

        s3 = self.client()
        out = {}
        for bucket, rules in self.desired().items():
            try:
                s3.head_bucket(Bucket=bucket)
                out[bucket] = "exists"
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                    raise
                s3.create_bucket(Bucket=bucket)
                out[bucket] = "created"
            if rules:
                s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})
        return out
