"""Beat tasks of routing (names never change: beat names them)."""

from celery import shared_task

from routing import rules, services


@shared_task(ignore_result=True)
def routing_sweep_task() -> dict[str, int]:
    """Agents away or outside their hours hand back their waiting conversations; pools are
    routed to whoever is free."""
    return services.routing_sweep()


@shared_task(ignore_result=True)
def rules_no_reply_task() -> int:
    return rules.rules_no_reply_run()


@shared_task(ignore_result=True)
def business_intervals_rebuild_task() -> int:
    """Nightly: moves the business intervals' horizon forward."""
    return services.business_intervals_rebuild()
