"""The Ray shell around the scheduler: the actor, the handles that call it, its metrics.

``actor`` applies ``ray.remote`` to the scheduler in one place; ``handle`` is the only code that
calls the actor (error unwrapping, retry while Ray restarts it, typed answers); ``metrics``
publishes the scheduler's series through Ray. The scheduler itself (``luma_ray.scheduler``) is
pure and knows nothing of Ray.
"""
