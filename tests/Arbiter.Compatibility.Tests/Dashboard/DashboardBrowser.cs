using Microsoft.Playwright;

namespace Arbiter.Compatibility.Tests.Dashboard;

/// <summary>
/// Debian's chromium, headless, driven through Playwright's driver (shipped inside the NuGet
/// package: nothing is downloaded; the browser is the system's, by <see cref="ExecutablePath"/>).
/// Every wait is a DOM condition polled by the page with a deadline; a timeout says what was
/// awaited and shows the page's text.
/// </summary>
public sealed class DashboardBrowser : IAsyncDisposable
{
    /// <summary>Debian's chromium (scripts/test.sh installs it); ARBITER_TEST_CHROMIUM names another.</summary>
    public static string ExecutablePath =>
        Environment.GetEnvironmentVariable("ARBITER_TEST_CHROMIUM") is { Length: > 0 } chosen ? chosen : "/usr/bin/chromium";

    /// <summary>Longest a DOM condition is awaited (the machine may be loaded: load 10–30 is normal).</summary>
    public static readonly TimeSpan WaitTimeout = TimeSpan.FromSeconds(45);

    private readonly IPlaywright _playwright;
    private readonly IBrowser _browser;

    private DashboardBrowser(IPlaywright playwright, IBrowser browser, IPage page)
    {
        _playwright = playwright;
        _browser = browser;
        Page = page;
    }

    /// <summary>The one tab.</summary>
    public IPage Page { get; }

    /// <summary>Starts chromium (1280×900) and opens <paramref name="url"/>.</summary>
    public static async Task<DashboardBrowser> OpenAsync(string url)
    {
        if (!File.Exists(ExecutablePath))
        {
            throw new FileNotFoundException($"{ExecutablePath} is missing: install Debian's chromium (apt-get install -y chromium; scripts/test.sh does)", ExecutablePath);
        }

        var playwright = await Playwright.CreateAsync();
        try
        {
            var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
            {
                ExecutablePath = ExecutablePath,
                Headless = true,
                // Root (CI) cannot use chromium's sandbox; /dev/shm is small in containers.
                Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
                Timeout = (float)WaitTimeout.TotalMilliseconds,
            });
            var page = await browser.NewPageAsync(new BrowserNewPageOptions { ViewportSize = new ViewportSize { Width = 1280, Height = 900 } });
            page.SetDefaultTimeout((float)WaitTimeout.TotalMilliseconds);
            await page.GotoAsync(url);
            return new DashboardBrowser(playwright, browser, page);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Waits until <paramref name="predicate"/> (a JavaScript function of <paramref name="argument"/>)
    /// is true in the page, for <paramref name="timeout"/> (default <see cref="WaitTimeout"/>).
    /// </summary>
    public async Task WaitForAsync(string what, string predicate, object? argument = null, TimeSpan? timeout = null)
    {
        var limit = timeout ?? WaitTimeout;
        try
        {
            await Page.WaitForFunctionAsync(predicate, argument, new PageWaitForFunctionOptions
            {
                Timeout = (float)limit.TotalMilliseconds,
                PollingInterval = 100,
            });
        }
        catch (TimeoutException e)
        {
            var text = await Page.EvaluateAsync<string>("() => document.body.innerText");
            throw new TimeoutException($"the dashboard did not show {what} within {limit.TotalSeconds} s; the page read:\n{text}", e);
        }
    }

    /// <summary>
    /// Saves a screenshot of the page into the test output's dashboard-screenshots/, and into the
    /// repository's docs/images/ when ARBITER_UPDATE_SCREENSHOTS=1 (how the committed ones are made).
    /// </summary>
    public async Task ScreenshotAsync(string fileName, bool fullPage = false)
    {
        var local = Path.Combine(AppContext.BaseDirectory, "dashboard-screenshots", fileName);
        Directory.CreateDirectory(Path.GetDirectoryName(local)!);
        await Page.ScreenshotAsync(new PageScreenshotOptions { Path = local, FullPage = fullPage });
        if (Environment.GetEnvironmentVariable("ARBITER_UPDATE_SCREENSHOTS") == "1")
        {
            // tests/Arbiter.Compatibility.Tests/bin/{Configuration}/net10.0/ → the repository root.
            var root = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Parent!.Parent!.Parent!.Parent!.FullName;
            File.Copy(local, Path.Combine(root, "docs", "images", fileName), overwrite: true);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        await _browser.DisposeAsync();
        _playwright.Dispose();
    }
}
