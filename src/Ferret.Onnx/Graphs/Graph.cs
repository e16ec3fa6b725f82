using System.Globalization;

namespace Ferret.Onnx.Graphs;

/// <summary>A node attribute value.</summary>
public abstract record AttributeValue
{
    public sealed record Int(long Value) : AttributeValue;

    public sealed record Float(float Value) : AttributeValue;

    public sealed record String(string Value) : AttributeValue;

    public sealed record Ints(long[] Value) : AttributeValue;

    public sealed record Floats(float[] Value) : AttributeValue;

    public sealed record Strings(string[] Value) : AttributeValue;

    public sealed record Tensor(TensorData Value) : AttributeValue;

    public static implicit operator AttributeValue(long v) => new Int(v);

    public static implicit operator AttributeValue(float v) => new Float(v);

    public static implicit operator AttributeValue(string v) => new String(v);

    public static implicit operator AttributeValue(long[] v) => new Ints(v);

    public static implicit operator AttributeValue(TensorData v) => new Tensor(v);
}

/// <summary>One operator application. Empty input names stand for omitted optional inputs.</summary>
public sealed class Node
{
    public Node(string opType, string name, IEnumerable<string> inputs, IEnumerable<string> outputs, IDictionary<string, AttributeValue>? attributes = null, string domain = "")
    {
        OpType = opType;
        Name = name;
        Inputs = [.. inputs];
        Outputs = [.. outputs];
        Attributes = attributes is null ? [] : new Dictionary<string, AttributeValue>(attributes, StringComparer.Ordinal);
        Domain = domain;
    }

    public string OpType { get; }

    public string Name { get; }

    public string Domain { get; }

    public List<string> Inputs { get; }

    public List<string> Outputs { get; }

    public Dictionary<string, AttributeValue> Attributes { get; }

    public long GetInt(string name, long defaultValue) => Attributes.TryGetValue(name, out var a) && a is AttributeValue.Int i ? i.Value : defaultValue;

    public float GetFloat(string name, float defaultValue) => Attributes.TryGetValue(name, out var a) && a is AttributeValue.Float f ? f.Value : defaultValue;

    public long[]? GetInts(string name) => Attributes.TryGetValue(name, out var a) && a is AttributeValue.Ints i ? i.Value : null;

    public string? GetString(string name) => Attributes.TryGetValue(name, out var a) && a is AttributeValue.String s ? s.Value : null;

    public TensorData? GetTensor(string name) => Attributes.TryGetValue(name, out var a) && a is AttributeValue.Tensor t ? t.Value : null;

    /// <summary>The input at a position, or null when absent or omitted.</summary>
    public string? Input(int index) => index < Inputs.Count && Inputs[index].Length > 0 ? Inputs[index] : null;

    public override string ToString() => $"{OpType} '{Name}'";
}

public sealed record ValueInfo(string Name, TensorType Type);

/// <summary>A computation graph: inputs, constant initializers, nodes in topological order, outputs.</summary>
public sealed class Graph
{
    public string Name { get; set; } = "graph";

    public List<ValueInfo> Inputs { get; } = [];

    public List<ValueInfo> Outputs { get; } = [];

    public List<Node> Nodes { get; } = [];

    public Dictionary<string, TensorData> Initializers { get; } = new(StringComparer.Ordinal);

    /// <summary>Types of values (inputs, initializers, intermediates, outputs) where known.</summary>
    public Dictionary<string, TensorType> ValueTypes { get; } = new(StringComparer.Ordinal);

    public TensorType? TypeOf(string value) => ValueTypes.GetValueOrDefault(value);

    /// <summary>A copy whose node, value and initializer collections can be changed independently (tensor bytes are shared).</summary>
    public Graph Clone()
    {
        var g = new Graph { Name = Name };
        g.Inputs.AddRange(Inputs);
        g.Outputs.AddRange(Outputs);
        g.Nodes.AddRange(Nodes.Select(n => new Node(n.OpType, n.Name, n.Inputs, n.Outputs, n.Attributes, n.Domain)));
        foreach (var (k, v) in Initializers)
            g.Initializers[k] = v;
        foreach (var (k, v) in ValueTypes)
            g.ValueTypes[k] = v;
        return g;
    }

    /// <summary>Drops initializers no node reads and no output names.</summary>
    public void PruneUnusedInitializers()
    {
        var used = new HashSet<string>(Nodes.SelectMany(n => n.Inputs).Concat(Outputs.Select(o => o.Name)), StringComparer.Ordinal);
        foreach (var name in Initializers.Keys.Where(k => !used.Contains(k)).ToList())
        {
            Initializers.Remove(name);
            ValueTypes.Remove(name);
        }
    }

    /// <summary>
    /// Drops nodes no output depends on, then inputs (except <paramref name="keepInputs"/>) and initializers nothing
    /// reads: a block graph cut from a larger one keeps only the work its outputs need.
    /// </summary>
    public void PruneDeadCode(IEnumerable<string>? keepInputs = null)
    {
        var live = new HashSet<string>(Outputs.Select(o => o.Name), StringComparer.Ordinal);
        live.UnionWith(keepInputs ?? []);
        var kept = new List<Node>(Nodes.Count);
        for (int i = Nodes.Count - 1; i >= 0; i--)
        {
            var n = Nodes[i];
            if (!n.Outputs.Any(live.Contains))
            {
                foreach (var o in n.Outputs)
                    ValueTypes.Remove(o);
                continue;
            }
            kept.Add(n);
            foreach (var input in n.Inputs)
            {
                if (input.Length > 0)
                    live.Add(input);
            }
        }
        kept.Reverse();
        Nodes.Clear();
        Nodes.AddRange(kept);
        foreach (var input in Inputs.Where(i => !live.Contains(i.Name)).ToList())
        {
            Inputs.Remove(input);
            ValueTypes.Remove(input.Name);
        }
        PruneUnusedInitializers();
    }

    /// <summary>Checks that every node input is defined before use and every value is produced once.</summary>
    public void Validate()
    {
        var defined = new HashSet<string>(StringComparer.Ordinal);
        foreach (var i in Inputs)
        {
            if (!defined.Add(i.Name))
                throw new InvalidDataException($"Graph '{Name}': input '{i.Name}' is declared twice.");
        }
        foreach (var name in Initializers.Keys)
            defined.Add(name);
        foreach (var n in Nodes)
        {
            foreach (var input in n.Inputs)
            {
                if (input.Length > 0 && !defined.Contains(input))
                    throw new InvalidDataException($"Graph '{Name}': node {n} reads '{input}' before it is defined.");
            }
            foreach (var output in n.Outputs)
            {
                if (output.Length > 0 && !defined.Add(output))
                    throw new InvalidDataException($"Graph '{Name}': value '{output}' is produced twice (again by {n}).");
            }
        }
        foreach (var o in Outputs)
        {
            if (!defined.Contains(o.Name))
                throw new InvalidDataException($"Graph '{Name}': output '{o.Name}' is never produced.");
        }
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"Graph '{Name}': {Inputs.Count} inputs, {Nodes.Count} nodes, {Outputs.Count} outputs");
}
