from celery import shared_task


@shared_task(name="proj.tasks.agent")
def agent(conversation_id: str) -> str:
    return conversation_id
