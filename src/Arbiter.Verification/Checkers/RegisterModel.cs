using Arbiter.Verification.History;

namespace Arbiter.Verification.Checkers;

/// <summary>
/// The sequential specification of one key as a register with read, write and compare-and-set.
/// States are value ids (0: absent); <see cref="Unknown"/> is a state that agrees with any first
/// observation, used to check a window of a history without its past.
/// </summary>
internal static class RegisterModel
{
    /// <summary>An initial state consistent with anything: the register's value before a window.</summary>
    public const int Unknown = -1;

    /// <summary>Applies <paramref name="op"/> to <paramref name="state"/>; false if its recorded output is impossible there.</summary>
    public static bool Step(int state, in ModelOp op, out int next)
    {
        next = state;
        switch (op.Kind)
        {
            case OperationKind.Read:
                if (state == Unknown)
                {
                    next = op.Value;
                    return true;
                }

                return state == op.Value;
            case OperationKind.Write:
                next = op.Value;
                return true;
            case OperationKind.Cas:
                var matches = state == op.Expected || (state == Unknown && op.Succeeded != false);
                if (op.IsInfo)
                {
                    // Indeterminate: if it takes effect here it swaps when it matches; "never" is
                    // linearizing it last, where it changes nothing observable.
                    next = state == op.Expected ? op.Value : state;
                    return true;
                }

                if (op.Succeeded == true)
                {
                    next = op.Value;
                    return matches;
                }

                return state != op.Expected;
            default:
                throw new InvalidOperationException($"the register model has no {op.Kind}");
        }
    }
}

/// <summary>An operation as the model sees it: value ids instead of strings.</summary>
internal readonly record struct ModelOp(int Index, OperationKind Kind, int Value, int Expected, bool? Succeeded, bool IsInfo, long InvokeNs, long CompleteNs);
