using System.Globalization;
using System.Text.Json;
using Ferret.Core.Protocol;
using Ferret.Training.Runtime;
using Spectre.Console;

namespace Ferret.Cli.Demo;

/// <summary>
/// The demo's heterogeneous devices: which device each edge client trains on (<c>--devices cpu,cuda,...</c>), and
/// what the clients reported while the rounds ran (device check, packets, fingerprints), for the closing table.
/// </summary>
internal sealed class DemoDevices
{
    private readonly Dictionary<string, ClientState> _byId = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    private DemoDevices(IReadOnlyList<ExecutionDevice> devices) => Devices = devices;

    /// <summary>One device per client.</summary>
    public IReadOnlyList<ExecutionDevice> Devices { get; }

    /// <summary>
    /// Parses <c>--devices</c>: one entry per client, or one entry for all. Without it every client is on the CPU;
    /// with it and no explicit <c>--clients</c>, its length is the number of clients.
    /// </summary>
    public static DemoDevices Parse(string? list, int clients, bool clientsGiven)
    {
        if (string.IsNullOrWhiteSpace(list))
            return new DemoDevices(Enumerable.Repeat(ExecutionDevice.Cpu, clients).ToList());
        var entries = list.Split(',', StringSplitOptions.TrimEntries);
        var devices = new List<ExecutionDevice>();
        foreach (var entry in entries)
        {
            try
            {
                devices.Add(ExecutionDevice.Parse(entry));
            }
            catch (ArgumentException)
            {
                throw new ArgumentException($"--devices entry '{entry}' is not a device: expected cpu, cuda or cuda:N.");
            }
        }
        if (devices.Count == 1 && clientsGiven)
            return new DemoDevices(Enumerable.Repeat(devices[0], clients).ToList());
        if (clientsGiven && devices.Count != clients)
            throw new ArgumentException($"--devices lists {devices.Count} devices for --clients {clients}: give one per client, or one for all.");
        return new DemoDevices(devices);
    }

    /// <summary>Remembers what a client reported.</summary>
    public void Observe(ClientEvent e)
    {
        lock (_lock)
        {
            if (!_byId.TryGetValue(e.ClientId, out var state))
                _byId[e.ClientId] = state = new ClientState();
            switch (e.Kind)
            {
                case ClientEvent.DeviceCheck:
                    state.DeviceCheck = e.Detail;
                    break;
                case ClientEvent.Received:
                    state.Packets++;
                    break;
                case ClientEvent.Fingerprint:
                    state.LastRound = Math.Max(state.LastRound, e.Round);
                    state.Fingerprints[e.Round] = e.Detail ?? "";
                    break;
            }
        }
    }

    /// <summary>Per client: its device, its device check, packets sent, and whether its model matched the demo's replay after every round.</summary>
    public void Render(IReadOnlyDictionary<string, string> clientNames, IReadOnlyDictionary<int, string> replay)
    {
        var table = new Table().AddColumn("client").AddColumn("device").AddColumn("device check")
            .AddColumn(new TableColumn("packets").RightAligned()).AddColumn("model after each round");
        lock (_lock)
        {
            foreach (var (id, state) in _byId.OrderBy(kv => clientNames.GetValueOrDefault(kv.Key, kv.Key), StringComparer.Ordinal))
            {
                string name = clientNames.GetValueOrDefault(id, id);
                int index = int.TryParse(name.AsSpan(name.LastIndexOf('-') + 1), CultureInfo.InvariantCulture, out int n) ? n - 1 : -1;
                string device = index >= 0 && index < Devices.Count ? Devices[index].ToString() : "?";
                int agree = state.Fingerprints.Count(f => replay.TryGetValue(f.Key, out var r) && f.Value == r);
                string models = state.Fingerprints.Count == 0 ? "unreported"
                    : agree == state.Fingerprints.Count ? $"{agree}/{state.Fingerprints.Count} match the replay" : $"[red]{agree}/{state.Fingerprints.Count} match[/]";
                table.AddRow(Markup.Escape(name), device, Markup.Escape(state.DeviceCheck ?? "not reported"), state.Packets.ToString(CultureInfo.InvariantCulture), models);
            }
        }
        AnsiConsole.Write(table);
    }

    /// <summary>Client id to name, from the coordinator's registry (<c>GET /api/clients</c>).</summary>
    public static async Task<Dictionary<string, string>> NamesAsync(HttpClient admin, CancellationToken ct)
    {
        using var doc = JsonDocument.Parse(await admin.GetStringAsync(new Uri("api/clients", UriKind.Relative), ct).ConfigureAwait(false));
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var c in doc.RootElement.EnumerateArray())
        {
            if (c.TryGetProperty("id", out var id) && c.TryGetProperty("name", out var name))
                names[id.GetString()!] = name.GetString() ?? id.GetString()!;
        }
        return names;
    }

    private sealed class ClientState
    {
        public string? DeviceCheck { get; set; }

        public int Packets { get; set; }

        public int LastRound { get; set; }

        public Dictionary<int, string> Fingerprints { get; } = [];
    }
}
