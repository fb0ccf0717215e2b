from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "core.agents"
    label = "agents"
