"""The scheduler: tiered queues, policies, leases and back-pressure, the journal, and the
service that answers every operation of ``protocol``. Pure: no Ray, torch, FastAPI or boto3
(the Ray shell is ``luma_ray.runtime``)."""
