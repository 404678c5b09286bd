"""Worker Versioning: each release's workers poll as one build of the `refunds` worker deployment.

A new build's workers start beside the old ones and receive nothing until ops promote the build
(`refunds deploy promote BUILD [--ramp PERCENT]`); promotion moves new refunds and, since refunds are
AUTO_UPGRADE, refunds in flight to the new build at their next step, where `workflow.patched` keeps
them deterministic. Setting the old build current again is the rollback. Without REFUNDS_BUILD_ID
workers are unversioned, as in development.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.enums.v1 import VersionDrainageStatus, WorkerDeploymentVersionStatus
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import WorkerDeploymentConfig

from workers.settings import Settings

IDENTITY = "refunds-cli"


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """This worker's build in the deployment; None: unversioned."""
    if not settings.build_id:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(settings.deployment_name, settings.build_id),
        use_worker_versioning=True,
        # refunds live for days: they follow the current build, and patches keep replays deterministic
        default_versioning_behavior=VersioningBehavior.AUTO_UPGRADE,
    )


@dataclass(frozen=True)
class BuildView:
    build_id: str
    status: str  # inactive, ramping, current, draining, drained
    drainage: str


@dataclass(frozen=True)
class DeploymentView:
    name: str
    current: str | None  # None: unversioned workers get the work
    ramping: str | None
    ramp_percentage: int
    builds: list[BuildView]


async def promote(client: Client, settings: Settings, build_id: str, ramp: int | None = None) -> None:
    """Make `build_id` current, or with `ramp` send that share of new refunds to it."""
    namespace, name, service = client.namespace, settings.deployment_name, client.workflow_service
    if ramp is None:
        await service.set_worker_deployment_current_version(
            SetWorkerDeploymentCurrentVersionRequest(
                namespace=namespace, deployment_name=name, build_id=build_id, identity=IDENTITY
            )
        )
        return
    await service.set_worker_deployment_ramping_version(
        SetWorkerDeploymentRampingVersionRequest(
            namespace=namespace, deployment_name=name, build_id=build_id, identity=IDENTITY, percentage=ramp
        )
    )


async def describe(client: Client, settings: Settings) -> DeploymentView:
    response = await client.workflow_service.describe_worker_deployment(
        DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=settings.deployment_name)
    )
    info = response.worker_deployment_info
    routing = info.routing_config
    builds = [
        BuildView(
            build_id=summary.deployment_version.build_id,
            status=_last_word(WorkerDeploymentVersionStatus.Name(summary.status)),
            drainage=_last_word(VersionDrainageStatus.Name(summary.drainage_status)),
        )
        for summary in info.version_summaries
    ]
    return DeploymentView(
        name=info.name,
        current=routing.current_deployment_version.build_id or None,
        ramping=routing.ramping_deployment_version.build_id or None,
        ramp_percentage=round(routing.ramping_version_percentage),
        builds=builds,
    )


def _last_word(enum_name: str) -> str:
    """`WORKER_DEPLOYMENT_VERSION_STATUS_CURRENT` -> `current`."""
    return enum_name.rsplit("_", 1)[-1].lower()
