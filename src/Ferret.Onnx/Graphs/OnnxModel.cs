using System.Globalization;
using Ferret.Onnx.Protos;
using Google.Protobuf;

namespace Ferret.Onnx.Graphs;

/// <summary>
/// An ONNX model: one graph plus the opset it targets, read from and written to the ONNX protobuf format.
/// Large constant tensors can live in an external data file beside the model (needed past protobuf's 2 GB).
/// </summary>
public sealed class OnnxModel
{
    /// <summary>Models whose constants exceed this many bytes are written with external data.</summary>
    public const long ProtobufLimit = 1L << 31;

    public OnnxModel(Graph graph, int opset = 18)
    {
        Graph = graph ?? throw new ArgumentNullException(nameof(graph));
        Opset = opset;
    }

    public Graph Graph { get; }

    public int Opset { get; set; }

    public long IrVersion { get; set; } = 8;

    public string ProducerName { get; set; } = "Ferret.NET";

    public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

    // ---- to and from protobuf --------------------------------------------------------------------

    public ModelProto ToProto(Func<string, TensorData, TensorProto>? tensorWriter = null)
    {
        var model = new ModelProto { IrVersion = IrVersion, ProducerName = ProducerName, ProducerVersion = "1", Graph = ToProto(Graph, tensorWriter) };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        foreach (var (k, v) in Metadata)
            model.MetadataProps.Add(new StringStringEntryProto { Key = k, Value = v });
        return model;
    }

    private static GraphProto ToProto(Graph g, Func<string, TensorData, TensorProto>? tensorWriter)
    {
        var p = new GraphProto { Name = g.Name };
        foreach (var i in g.Inputs)
            p.Input.Add(ValueInfo(i.Name, i.Type));
        foreach (var o in g.Outputs)
            p.Output.Add(ValueInfo(o.Name, o.Type));
        foreach (var (name, t) in g.Initializers)
            p.Initializer.Add(tensorWriter?.Invoke(name, t) ?? Tensor(name, t));
        var io = new HashSet<string>(g.Inputs.Select(i => i.Name).Concat(g.Outputs.Select(o => o.Name)).Concat(g.Initializers.Keys), StringComparer.Ordinal);
        foreach (var n in g.Nodes)
        {
            var np = new NodeProto { Name = n.Name, OpType = n.OpType, Domain = n.Domain };
            np.Input.AddRange(n.Inputs);
            np.Output.AddRange(n.Outputs);
            foreach (var (name, a) in n.Attributes)
                np.Attribute.Add(Attribute(name, a));
            p.Node.Add(np);
            foreach (var o in n.Outputs)
            {
                if (o.Length > 0 && !io.Contains(o) && g.ValueTypes.TryGetValue(o, out var t) && t.HasRank)
                    p.ValueInfo.Add(ValueInfo(o, t));
            }
        }
        return p;
    }

    private static ValueInfoProto ValueInfo(string name, TensorType t)
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = (int)t.ElementType };
        if (t.Shape is not null)
        {
            tensor.Shape = new TensorShapeProto();
            foreach (var d in t.Shape)
            {
                var dim = new TensorShapeProto.Types.Dimension();
                if (d.Value is long v)
                    dim.DimValue = v;
                else if (d.Symbol is string s)
                    dim.DimParam = s;
                tensor.Shape.Dim.Add(dim);
            }
        }
        return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = tensor } };
    }

    internal static TensorProto Tensor(string name, TensorData t)
    {
        var p = new TensorProto { Name = name, DataType = (int)t.ElementType, RawData = ByteString.CopyFrom(t.Raw) };
        p.Dims.AddRange(t.Dims);
        return p;
    }

    private static AttributeProto Attribute(string name, AttributeValue a)
    {
        var p = new AttributeProto { Name = name };
        switch (a)
        {
            case AttributeValue.Int i: p.Type = AttributeProto.Types.AttributeType.Int; p.I = i.Value; break;
            case AttributeValue.Float f: p.Type = AttributeProto.Types.AttributeType.Float; p.F = f.Value; break;
            case AttributeValue.String s: p.Type = AttributeProto.Types.AttributeType.String; p.S = ByteString.CopyFromUtf8(s.Value); break;
            case AttributeValue.Ints i: p.Type = AttributeProto.Types.AttributeType.Ints; p.Ints.AddRange(i.Value); break;
            case AttributeValue.Floats f: p.Type = AttributeProto.Types.AttributeType.Floats; p.Floats.AddRange(f.Value); break;
            case AttributeValue.Strings s: p.Type = AttributeProto.Types.AttributeType.Strings; p.Strings.AddRange(s.Value.Select(ByteString.CopyFromUtf8)); break;
            case AttributeValue.Tensor t: p.Type = AttributeProto.Types.AttributeType.Tensor; p.T = Tensor("", t.Value); break;
            default: throw new NotSupportedException($"Attribute '{name}' has an unsupported kind {a.GetType().Name}.");
        }
        return p;
    }

    public static OnnxModel FromProto(ModelProto proto, string? directory = null)
    {
        ArgumentNullException.ThrowIfNull(proto);
        if (proto.Graph is null)
            throw new InvalidDataException("The ONNX model has no graph.");
        int opset = (int)(proto.OpsetImport.FirstOrDefault(o => o.Domain is "" or "ai.onnx")?.Version ?? 0);
        var model = new OnnxModel(FromProto(proto.Graph, directory), opset) { IrVersion = proto.IrVersion, ProducerName = proto.ProducerName };
        foreach (var m in proto.MetadataProps)
            model.Metadata[m.Key] = m.Value;
        return model;
    }

    private static Graph FromProto(GraphProto p, string? directory)
    {
        var g = new Graph { Name = p.Name };
        foreach (var t in p.Initializer)
        {
            var data = ReadTensor(t, directory);
            g.Initializers[t.Name] = data;
            g.ValueTypes[t.Name] = data.Type;
        }
        foreach (var i in p.Input)
        {
            var type = ReadType(i);
            g.ValueTypes[i.Name] = type;
            if (!g.Initializers.ContainsKey(i.Name))
                g.Inputs.Add(new ValueInfo(i.Name, type));
        }
        foreach (var v in p.ValueInfo)
            g.ValueTypes[v.Name] = ReadType(v);
        foreach (var o in p.Output)
        {
            var type = ReadType(o);
            g.ValueTypes[o.Name] = type;
            g.Outputs.Add(new ValueInfo(o.Name, type));
        }
        foreach (var n in p.Node)
        {
            var attrs = n.Attribute.ToDictionary(a => a.Name, a => ReadAttribute(a, n, directory), StringComparer.Ordinal);
            g.Nodes.Add(new Node(n.OpType, n.Name, n.Input, n.Output, attrs, n.Domain));
        }
        return g;
    }

    private static TensorType ReadType(ValueInfoProto v)
    {
        var t = v.Type?.TensorType ?? throw new NotSupportedException($"Value '{v.Name}' is not a tensor; Ferret.NET graphs hold tensors only.");
        Dim[]? shape = t.Shape?.Dim.Select(d => d.ValueCase switch
        {
            TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue => new Dim(d.DimValue),
            TensorShapeProto.Types.Dimension.ValueOneofCase.DimParam => new Dim(d.DimParam),
            _ => Dim.Unknown,
        }).ToArray();
        return new TensorType((ElementType)t.ElemType, shape);
    }

    private static AttributeValue ReadAttribute(AttributeProto a, NodeProto n, string? directory) => a.Type switch
    {
        AttributeProto.Types.AttributeType.Int => new AttributeValue.Int(a.I),
        AttributeProto.Types.AttributeType.Float => new AttributeValue.Float(a.F),
        AttributeProto.Types.AttributeType.String => new AttributeValue.String(a.S.ToStringUtf8()),
        AttributeProto.Types.AttributeType.Ints => new AttributeValue.Ints([.. a.Ints]),
        AttributeProto.Types.AttributeType.Floats => new AttributeValue.Floats([.. a.Floats]),
        AttributeProto.Types.AttributeType.Strings => new AttributeValue.Strings(a.Strings.Select(s => s.ToStringUtf8()).ToArray()),
        AttributeProto.Types.AttributeType.Tensor => new AttributeValue.Tensor(ReadTensor(a.T, directory)),
        _ => throw new NotSupportedException($"Attribute '{a.Name}' of node '{n.Name}' ({n.OpType}) has unsupported type {a.Type}."),
    };

    internal static TensorData ReadTensor(TensorProto t, string? directory)
    {
        var type = (ElementType)t.DataType;
        long[] dims = [.. t.Dims];
        long count = dims.Aggregate(1L, (a, d) => a * d);
        if (t.DataLocation == TensorProto.Types.DataLocation.External)
            return new TensorData(type, dims, ReadExternal(t, directory, count * type.Size()));
        if (!t.RawData.IsEmpty)
            return new TensorData(type, dims, t.RawData.ToByteArray());
        return type switch
        {
            ElementType.Float => TensorData.FromFloats([.. t.FloatData], dims),
            ElementType.Double => TensorData.FromDoubles([.. t.DoubleData], dims),
            ElementType.Int64 => TensorData.FromInt64s([.. t.Int64Data], dims),
            ElementType.Int32 => TensorData.FromInt32s([.. t.Int32Data], dims),
            ElementType.Bool => TensorData.FromBools(t.Int32Data.Select(v => v != 0).ToArray(), dims),
            _ => throw new NotSupportedException($"Tensor '{t.Name}' of type {type} stores its values in a field Ferret.NET does not read."),
        };
    }

    private static byte[] ReadExternal(TensorProto t, string? directory, long length)
    {
        var entries = t.ExternalData.ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal);
        if (!entries.TryGetValue("location", out var location))
            throw new InvalidDataException($"Tensor '{t.Name}' is external but names no location.");
        if (directory is null)
            throw new InvalidDataException($"Tensor '{t.Name}' lives in '{location}', but the model was not loaded from a file.");
        var path = Path.GetFullPath(Path.Combine(directory, location));
        if (!path.StartsWith(Path.GetFullPath(directory), StringComparison.Ordinal))
            throw new InvalidDataException($"Tensor '{t.Name}' points outside the model's folder ('{location}').");
        long offset = entries.TryGetValue("offset", out var o) ? long.Parse(o, CultureInfo.InvariantCulture) : 0;
        if (entries.TryGetValue("length", out var l) && long.Parse(l, CultureInfo.InvariantCulture) != length)
            throw new InvalidDataException($"Tensor '{t.Name}' declares {l} external bytes; its shape needs {length}.");
        using var stream = File.OpenRead(path);
        if (offset + length > stream.Length)
            throw new InvalidDataException($"External data file '{path}' is {stream.Length} bytes; tensor '{t.Name}' needs bytes {offset}..{offset + length}.");
        var bytes = new byte[length];
        stream.Position = offset;
        stream.ReadExactly(bytes);
        return bytes;
    }

    // ---- files ----------------------------------------------------------------------------------

    public byte[] ToBytes() => ToProto().ToByteArray();

    public static OnnxModel FromBytes(byte[] bytes) => FromProto(ModelProto.Parser.ParseFrom(bytes));

    public static OnnxModel Load(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"ONNX model '{path}' does not exist.", path);
        ModelProto proto;
        try
        {
            using var stream = File.OpenRead(path);
            proto = ModelProto.Parser.ParseFrom(stream);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{path}' is not a valid ONNX model: {e.Message}", e);
        }
        return FromProto(proto, Path.GetDirectoryName(Path.GetFullPath(path)));
    }

    /// <summary>
    /// Writes the model atomically. Constants larger than <paramref name="externalThresholdBytes"/> go to
    /// <c>&lt;file&gt;.data</c> when <paramref name="externalData"/> is set, or automatically when the
    /// constants would not fit in one protobuf message.
    /// </summary>
    public void Save(string path, bool externalData = false, long externalThresholdBytes = 1024)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        long constants = Graph.Initializers.Values.Sum(t => t.Raw.LongLength);
        externalData |= constants > ProtobufLimit - (64 << 20);
        var full = Path.GetFullPath(path);
        var dataName = Path.GetFileName(full) + ".data";
        var dataPath = full + ".data";
        var tmpModel = full + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        var tmpData = dataPath + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            ModelProto proto;
            if (externalData)
            {
                using var data = File.Create(tmpData);
                proto = ToProto((name, t) =>
                {
                    if (t.Raw.LongLength <= externalThresholdBytes)
                        return Tensor(name, t);
                    long offset = (data.Position + 4095) / 4096 * 4096;
                    data.SetLength(offset);
                    data.Position = offset;
                    data.Write(t.Raw);
                    var p = new TensorProto { Name = name, DataType = (int)t.ElementType, DataLocation = TensorProto.Types.DataLocation.External };
                    p.Dims.AddRange(t.Dims);
                    p.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = dataName });
                    p.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = offset.ToString(CultureInfo.InvariantCulture) });
                    p.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = t.Raw.LongLength.ToString(CultureInfo.InvariantCulture) });
                    return p;
                });
            }
            else
            {
                proto = ToProto();
            }
            using (var stream = File.Create(tmpModel))
                proto.WriteTo(stream);
            if (externalData)
                File.Move(tmpData, dataPath, overwrite: true);
            File.Move(tmpModel, full, overwrite: true);
        }
        finally
        {
            File.Delete(tmpModel);
            File.Delete(tmpData);
        }
    }
}
