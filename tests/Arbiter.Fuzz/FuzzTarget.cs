namespace Arbiter.Fuzz;

/// <summary>
/// One piece of code that takes untrusted bytes. <see cref="Run"/> throws <see cref="FuzzFindingException"/>
/// (or any unexpected exception) when the input exposes a defect; otherwise it returns a small
/// number naming the outcome (which branch, which error), which the engine uses as feedback: an
/// input with an outcome not seen before joins the corpus.
/// </summary>
public abstract class FuzzTarget
{
    /// <summary>Name, also the corpus folder under tests/fuzz-corpus.</summary>
    public abstract string Name { get; }

    /// <summary>Longest input the mutator produces.</summary>
    public virtual int InputBytesMax => 4096;

    /// <summary>Most bytes one input may allocate on the fuzzing thread before it counts as unbounded allocation.</summary>
    public virtual long AllocationBytesMax(int inputLength) => (1024 * 1024) + (256L * inputLength);

    /// <summary>Built-in seeds, used with the committed corpus (and alone when there is none).</summary>
    public abstract IEnumerable<byte[]> BuiltInSeeds();

    /// <summary>Runs one input; returns an outcome signature.</summary>
    public abstract int Run(byte[] input);

    /// <summary>Clears any state kept between inputs (called between inputs, outside the measured region, every <see cref="ResetEveryInputs"/>).</summary>
    public virtual void Reset()
    {
    }

    /// <summary>How often <see cref="Reset"/> runs.</summary>
    public virtual int ResetEveryInputs => int.MaxValue;
}

/// <summary>An input broke a property the target checks (not a crash of the code under test itself).</summary>
public sealed class FuzzFindingException : Exception
{
    public FuzzFindingException()
    {
    }

    public FuzzFindingException(string message)
        : base(message)
    {
    }

    public FuzzFindingException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
