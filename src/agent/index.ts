/** The agent room's public API: backends, tools, the agent loop, the server and the CLI commands. */
export type { ChatBackend, ChatChunk, ChatMessage, ChatReply, ChatRequest, ChatToolCall, FinishReason, ToolDefinition } from './backend.js';
export { BackendError, collectReply } from './backend.js';
export type { LocalBackendOptions, LocalTextModel } from './local-backend.js';
export { LocalBackend } from './local-backend.js';
export type { OpenAIBackendOptions } from './openai-backend.js';
export { OpenAIBackend } from './openai-backend.js';
export type { ToolOptions, ToolResult } from './tools.js';
export { ToolError, Toolbox, resolveInWorkspace } from './tools.js';
export type { SandboxMode, SandboxStatus } from './sandbox.js';
export { probeSandbox } from './sandbox.js';
export type { AgentEvent, AgentOptions } from './agent.js';
export { defaultAgentSystemPrompt, estimateTokens, runAgent, summaryRequest } from './agent.js';
export type { RunningServer, ServerOptions } from './server.js';
export { HttpError, SerialQueue, startServer } from './server.js';
export type { AgentCommandOptions, AgentCommandResult, Out, RemoteBackendOptions, ServeCommandOptions } from './cli-commands.js';
export { EventPrinter, agentCommand, defaultRemoteModel, modelIdFromDir, remoteBackend, serveCommand } from './cli-commands.js';
