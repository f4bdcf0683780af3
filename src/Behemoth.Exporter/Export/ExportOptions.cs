namespace Behemoth.Exporter.Export;

/// <summary>How routed experts appear in the graph.</summary>
public enum MoeForm
{
    /// <summary>ONNX Runtime's com.microsoft MoE / QMoE kernels (CPU, CUDA).</summary>
    Fused,

    /// <summary>TopK, Gather, per-expert MatMul and ScatterND: standard ops only, for providers without MoE kernels (DirectML).</summary>
    Decomposed,
}

/// <summary>Weight precision of the exported linear layers. Routers, norms and biases always stay float32.</summary>
public enum QuantKind { Fp32 }

public sealed record ExportOptions
{
    public QuantKind Quant { get; init; } = QuantKind.Fp32;
    public int BlockSize { get; init; } = 32;
    public MoeForm Moe { get; init; } = MoeForm.Fused;

    /// <summary>The longest sequence the RoPE tables cover (capped, so that long-context models do not carry huge tables).</summary>
    public int MaxContext { get; init; } = 8192;
}
