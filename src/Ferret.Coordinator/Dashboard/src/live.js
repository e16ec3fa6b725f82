// Live events from the coordinator's rounds hub (/hubs/rounds). JSON protocol: the hub's MessagePack contracts
// use integer keys, which a browser would see as bare arrays; JSON gives their field names.
import { HubConnectionBuilder, HubConnectionState, LogLevel } from '@microsoft/signalr';

// Retries forever, backing off to 10 s: a coordinator that restarts is found again without a reload.
const retry = { nextRetryDelayInMilliseconds: (ctx) => Math.min(10_000, 500 * 2 ** Math.min(ctx.previousRetryCount, 5)) };

export class Live {
  /**
   * @param {() => string | null} key the viewer's key
   * @param {{ onRoundEvent: Function, onClientEvent: Function, onState: (state: string) => void, onResumed: () => Promise<void> }} handlers
   */
  constructor(key, handlers) {
    this.handlers = handlers;
    this.experimentId = null;
    this.stopped = false;
    this.connection = new HubConnectionBuilder()
      .withUrl('/hubs/rounds', { accessTokenFactory: () => key() ?? '' })
      .withAutomaticReconnect(retry)
      .configureLogging(LogLevel.None)
      .build();
    this.connection.on('RoundEvent', (e) => handlers.onRoundEvent(e));
    this.connection.on('ClientEvent', (e) => handlers.onClientEvent(e));
    this.connection.onreconnecting(() => handlers.onState('reconnecting'));
    this.connection.onreconnected(() => this.resume());
    // Automatic reconnection gives up only when the first connection never came up; keep trying here.
    this.connection.onclose(() => { if (!this.stopped) this.startLater(); });
  }

  async start() {
    try {
      this.handlers.onState('connecting');
      await this.connection.start();
      await this.resume();
    } catch {
      this.handlers.onState('offline');
      this.startLater();
    }
  }

  startLater() {
    if (this.stopped || this.timer) return;
    this.handlers.onState('offline');
    this.timer = setTimeout(() => { this.timer = null; if (this.connection.state === HubConnectionState.Disconnected) this.start(); }, 2000);
  }

  /** Watches one experiment: subscribe first, then fill in from REST, so nothing that happens in between is lost. */
  async watch(experimentId) {
    this.experimentId = experimentId;
    if (this.connection.state === HubConnectionState.Connected) await this.subscribe();
  }

  async resume() {
    await this.subscribe();
    this.handlers.onState('live');
    await this.handlers.onResumed();
  }

  async subscribe() {
    if (this.experimentId) await this.connection.invoke('Subscribe', this.experimentId);
  }

  async stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.connection.stop();
  }
}
