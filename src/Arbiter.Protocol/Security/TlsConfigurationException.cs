namespace Arbiter.Protocol.Security;

/// <summary>A TLS flag names a file that is missing, unreadable or wrong; the message is one line for the operator.</summary>
public sealed class TlsConfigurationException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TlsConfigurationException()
    {
    }

    /// <summary>Creates the exception with its one-line message.</summary>
    public TlsConfigurationException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with its message and cause.</summary>
    public TlsConfigurationException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
