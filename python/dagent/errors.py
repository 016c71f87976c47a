"""dagent's exceptions. Every failure of a call is a DagentError; a failed step is not (the
result dict says ``"status": "failed"``). Ctrl-C during a run raises KeyboardInterrupt itself, its
partial result in ``.result``."""


class DagentError(Exception):
    """A call failed. ``message`` is the text the command line prints; ``problems`` lists each
    problem (for ConfigError and PlanError: "file:line: key: message", one per problem)."""

    def __init__(self, message, problems=()):
        super().__init__(message)
        self.message = message
        self.problems = list(problems)


class ConfigError(DagentError):
    """The config file or an override is invalid (exit code 2 on the command line)."""


class PlanError(DagentError):
    """The plan or task is invalid, or no valid plan could be made; nothing was executed."""


class ProviderUnreachable(DagentError):
    """The LLM or embedding provider could not be reached (exit code 3 on the command line)."""


class MemoryStoreError(DagentError):
    """ingest or search_memory failed: a path, the index, a dimension (named in the message)."""

