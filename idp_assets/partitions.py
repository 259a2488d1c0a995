"""One dynamic partition per document, keyed by the sha256 of its bytes."""

from dagster import DynamicPartitionsDefinition

DOCUMENTS_PARTITIONS_NAME = "documents"
documents_partitions = DynamicPartitionsDefinition(name=DOCUMENTS_PARTITIONS_NAME)
